"""End-to-end checks of the gateway with Portkey's own Python SDK (`portkey-ai`) as the client.

A Portkey user moves to Portico by changing only the SDK's `base_url`: the key, the config
(an id or an inline object), the trace id and the metadata are sent the way the SDK always
sends them (`x-portkey-*` headers beside a dummy `Authorization`), and must work unchanged.

Run by the Rust test `portkey_sdk::portkey_python_sdk` (crates/portico/tests/it/portkey_sdk.rs),
which starts a mock upstream and the real `portico` binary and passes, in the environment:

  PORTICO_BASE_URL   the gateway's base URL for the SDK (http://127.0.0.1:PORT/v1)
  PORTICO_KEY        a valid gateway key
  PORTICO_MODEL      a model routed to the OpenAI-kind mock upstream (@slug/model)
  PORTICO_CONFIG_ID  the id of a stored routing config (a fallback to that upstream)

Each check asserts what the SDK returned; the script prints one JSON line per passed check and
exits non-zero on the first failure. The Rust side then checks the request log.
"""

import json
import os
import sys

from portkey_ai import Portkey

BASE_URL = os.environ["PORTICO_BASE_URL"]
KEY = os.environ["PORTICO_KEY"]
MODEL = os.environ["PORTICO_MODEL"]
CONFIG_ID = os.environ["PORTICO_CONFIG_ID"]


def client(**options):
    return Portkey(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=20, **options)


def passed(name, **details):
    print(json.dumps({"check": name, **details}), flush=True)


def check_chat():
    pk = client(trace_id="pk-sdk-chat", metadata={"_user": "pk-alice", "team": "qa"})
    completion = pk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello from portkey"}]
    )
    assert completion.choices[0].message.content == "echo: hello from portkey", completion
    assert completion.usage.total_tokens > 0, completion.usage
    # The SDK hands back Portico's `x-portkey-*` answer headers without their prefix.
    headers = completion.get_headers() or {}
    assert headers.get("trace-id") == "pk-sdk-chat", headers
    assert headers.get("request-id"), headers
    assert headers.get("provider") == "@openai-mock", headers
    passed("chat", content=completion.choices[0].message.content)


def check_stream():
    pk = client(trace_id="pk-sdk-stream")
    stream = pk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "stream from portkey"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    for chunk in stream:
        if getattr(chunk, "usage", None):
            usage = chunk.usage
        for choice in chunk.choices or []:
            if choice.delta and choice.delta.content:
                parts.append(choice.delta.content)
    text = "".join(parts)
    assert text == "echo: stream from portkey", parts
    assert usage is not None and usage.total_tokens > 0, usage
    passed("stream", content=text)


def check_embeddings():
    pk = client(trace_id="pk-sdk-embeddings")
    result = pk.embeddings.create(model=MODEL, input=["one", "two"])
    assert len(result.data) == 2, result
    assert len(result.data[0].embedding) > 0, result
    passed("embeddings", vectors=len(result.data))


def check_config_id():
    # `config=` with a stored config's id: sent as `x-portkey-config: <id>`.
    pk = client(trace_id="pk-sdk-config-id", config=CONFIG_ID)
    completion = pk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "by config id"}]
    )
    assert completion.choices[0].message.content == "echo: by config id", completion
    passed("config_id")


def check_inline_config():
    # `config=` with an object: sent as JSON in the same header. A retry on 5xx here; the
    # upstream answers at once, so the answer shows no retry.
    pk = client(trace_id="pk-sdk-config-inline", config={"retry": {"attempts": 2}})
    completion = pk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "inline config"}]
    )
    assert completion.choices[0].message.content == "echo: inline config", completion
    headers = completion.get_headers() or {}
    assert headers.get("retry-attempt-count") == "0", headers
    passed("config_inline")


def check_virtual_key():
    # A Portkey virtual key names a catalog provider's slug; the model stays bare.
    pk = client(trace_id="pk-sdk-virtual-key", virtual_key=MODEL.split("/")[0].lstrip("@"))
    completion = pk.chat.completions.create(
        model=MODEL.split("/", 1)[1], messages=[{"role": "user", "content": "by virtual key"}]
    )
    assert completion.choices[0].message.content == "echo: by virtual key", completion
    assert (completion.get_headers() or {}).get("provider") == MODEL.split("/")[0], completion
    passed("virtual_key")


def check_custom_host():
    # A per-request upstream URL is refused with what to do instead, never silently ignored.
    pk = client(custom_host="http://10.1.2.3/v1")
    try:
        pk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    except Exception as err:  # the SDK's vendored `openai.BadRequestError`
        message = str(err)
        assert getattr(err, "status_code", None) == 400, repr(err)
        assert "x-portkey-custom-host" in message and "base_url" in message, message
        passed("custom_host")
        return
    raise AssertionError("x-portkey-custom-host was accepted")


def check_bad_config():
    # A config the gateway cannot use is refused with the reason, not ignored.
    pk = client(
        config={"strategy": {"mode": "sideways"}, "targets": [{"provider": "@openai-mock"}]}
    )
    try:
        pk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    except Exception as err:  # the SDK's vendored `openai.BadRequestError`
        message = str(err)
        assert getattr(err, "status_code", None) == 400, repr(err)
        assert "sideways" in message, message
        passed("bad_config", message=message[:200])
        return
    raise AssertionError("a config with an unknown strategy mode was accepted")


def check_wrong_key():
    pk = Portkey(base_url=BASE_URL, api_key="prt-not-a-key-0123456789", max_retries=0)
    try:
        pk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    except Exception as err:  # the SDK's vendored `openai.AuthenticationError`
        assert getattr(err, "status_code", None) == 401, repr(err)
        passed("401", message=str(err)[:200])
        return
    raise AssertionError("a wrong gateway key was accepted")


CHECKS = {
    "chat": check_chat,
    "stream": check_stream,
    "embeddings": check_embeddings,
    "config_id": check_config_id,
    "config_inline": check_inline_config,
    "virtual_key": check_virtual_key,
    "custom_host": check_custom_host,
    "bad_config": check_bad_config,
    "401": check_wrong_key,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(CHECKS):
        CHECKS[name]()
