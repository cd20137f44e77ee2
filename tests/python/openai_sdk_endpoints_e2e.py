"""End-to-end checks of OpenAI's moderations, images, transcriptions and speech through the
gateway, with the official OpenAI Python SDK as the client.

Run by the Rust test `endpoints::the_openai_python_sdk_calls_all_four_through_portico`
(crates/portico/tests/it/endpoints.rs), which scripts the mock upstream's answers and passes:

  PORTICO_BASE_URL   the gateway's OpenAI base URL (http://127.0.0.1:PORT/v1)
  PORTICO_KEY        a valid gateway key
  PORTICO_PROVIDER   an OpenAI-kind provider pointed at the mock upstream (@slug)

Each check asserts what the SDK returned; the script prints one JSON line per passed check and
exits non-zero on the first failure.
"""

import json
import os
import sys

import openai

BASE_URL = os.environ["PORTICO_BASE_URL"]
KEY = os.environ["PORTICO_KEY"]
PROVIDER = os.environ["PORTICO_PROVIDER"]

client = openai.OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=20)


def passed(name, **details):
    print(json.dumps({"check": name, **details}), flush=True)


def check_moderations():
    result = client.moderations.create(
        model=f"{PROVIDER}/omni-moderation-latest", input="is this fine?"
    )
    assert result.id == "modr-sdk", result
    assert result.results[0].flagged is True, result
    passed("moderations", id=result.id)


def check_images():
    raw = client.images.with_raw_response.generate(
        model=f"{PROVIDER}/dall-e-3", prompt="a lighthouse at dusk", response_format="url"
    )
    result = raw.parse()
    assert result.data[0].url == "https://img.example/1.png", result
    assert raw.headers["x-portkey-provider"] == PROVIDER, raw.headers
    passed("images", url=result.data[0].url)


def check_transcriptions():
    result = client.audio.transcriptions.create(
        model=f"{PROVIDER}/whisper-1",
        file=("talk.wav", b"RIFF-sdk-audio-bytes", "audio/wav"),
        language="en",
    )
    assert result.text == "hello from the sdk", result
    passed("transcriptions", text=result.text)


def check_speech():
    response = client.audio.speech.create(
        model=f"{PROVIDER}/tts-1", voice="alloy", input="hello", response_format="mp3"
    )
    assert response.content == b"ID3-sdk-audio", response.content
    assert response.response.headers["content-type"] == "audio/mpeg", response.response.headers
    passed("speech", bytes=len(response.content))


CHECKS = {
    "moderations": check_moderations,
    "images": check_images,
    "transcriptions": check_transcriptions,
    "speech": check_speech,
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(CHECKS)
    for name in names:
        CHECKS[name]()
