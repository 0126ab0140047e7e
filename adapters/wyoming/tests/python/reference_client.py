"""Talks to an Alicia Wyoming server with the reference `wyoming` package.

Usage: python reference_client.py PORT. Prints one JSON object with what the server
answered; the Rust test that runs this checks it.
"""

import asyncio
import json
import sys

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

RATE, WIDTH, CHANNELS = 16000, 2, 1


async def describe(port: int) -> dict:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
        info = Info.from_event(event)
        asr, tts = info.asr[0], info.tts[0]
        return {
            "asr_program": asr.name,
            "asr_model": asr.models[0].name,
            "asr_languages": asr.models[0].languages,
            "asr_installed": asr.installed and asr.models[0].installed,
            "asr_attribution": asr.attribution.name,
            "tts_program": tts.name,
            "tts_voice": tts.voices[0].name,
            "tts_languages": tts.voices[0].languages,
            "tts_version": tts.version,
        }


async def transcribe(port: int) -> dict:
    samples = [(i % 40) - 20 for i in range(3 * 1024)]
    audio = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
        for start in range(0, len(audio), 2048):
            chunk = AudioChunk(rate=RATE, width=WIDTH, channels=CHANNELS, audio=audio[start : start + 2048])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            if Transcript.is_type(event.type):
                transcript = Transcript.from_event(event)
                return {"text": transcript.text, "expected_sum": sum(samples)}


async def synthesize(port: int) -> dict:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        voice = SynthesizeVoice(name="en_US-joe-medium")
        await client.write_event(Synthesize(text="Hello there. General Kenobi.", voice=voice).event())
        result = {"chunks": [], "bytes": 0}
        while True:
            event = await client.read_event()
            if AudioStart.is_type(event.type):
                start = AudioStart.from_event(event)
                result["start"] = [start.rate, start.width, start.channels]
            elif AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                result["chunks"].append(chunk.samples)
                result["bytes"] += len(chunk.audio)
            elif AudioStop.is_type(event.type):
                return result


async def refused(port: int) -> dict:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")).event())
        error = Error.from_event(await client.read_event())
        # The connection stays usable after an error.
        await client.write_event(Describe().event())
        after = await client.read_event()
        return {"text": error.text, "code": error.code, "after": after.type}


async def main(port: int) -> None:
    results = {
        "describe": await describe(port),
        "transcribe": await transcribe(port),
        "synthesize": await synthesize(port),
        "error": await refused(port),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(int(sys.argv[1])), timeout=60))
