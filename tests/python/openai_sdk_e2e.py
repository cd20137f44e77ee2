"""End-to-end checks of the gateway with the official OpenAI Python SDK as the client.

Run by the Rust test `sdk::openai_python_sdk` (crates/portico/tests/it/sdk.rs), which starts a
mock upstream and the real `portico` binary and passes their addresses in the environment:

  PORTICO_BASE_URL   the gateway's OpenAI base URL (http://127.0.0.1:PORT/v1)
  PORTICO_KEY        a valid gateway key
  PORTICO_MODEL      a model routed to the OpenAI-kind mock upstream (@slug/model)

Each check asserts what the SDK returned; the script prints one JSON line per passed check and
exits non-zero on the first failure, so the Rust side sees both the verdict and the details.
"""

import json
import os
import sys

import openai

BASE_URL = os.environ["PORTICO_BASE_URL"]
KEY = os.environ["PORTICO_KEY"]
MODEL = os.environ["PORTICO_MODEL"]

client = openai.OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=20)


def passed(name, **details):
    print(json.dumps({"check": name, **details}), flush=True)


def check_chat():
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello from the sdk"}],
        extra_headers={"x-portkey-trace-id": "sdk-trace-1"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello from the sdk", completion
    assert completion.usage is not None and completion.usage.total_tokens > 0, completion.usage
    assert raw.headers["x-portkey-trace-id"] == "sdk-trace-1", raw.headers
    assert raw.headers["x-portkey-request-id"], raw.headers
    assert raw.headers["x-portkey-provider"].startswith("@"), raw.headers
    passed("chat", content=completion.choices[0].message.content)


def check_stream():
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "stream this please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, roles, finish, usage = [], [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                parts.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    text = "".join(parts)
    assert text == "echo: stream this please", text
    assert roles[:1] == ["assistant"], roles
    assert finish == "stop", finish
    assert usage is not None and usage.completion_tokens > 0, usage
    passed("stream", content=text, chunks=len(parts))


def check_stream_tool_call():
    tools = [{"type": "function", "function": {"name": "read", "description": "read a file",
              "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "read hello.txt"}],
        tools=tools,
        stream=True,
    )
    calls, finish = {}, None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                if call.id:
                    entry["id"] = call.id
                if call.function and call.function.name:
                    entry["name"] += call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    assert finish == "tool_calls", finish
    assert calls and calls[0]["name"] == "read" and calls[0]["id"], calls
    json.loads(calls[0]["arguments"])
    passed("stream_tool_call", calls=calls)


# A 1x1 transparent PNG: every provider kind accepts base64 images (Bedrock refuses URLs).
TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def check_image():
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is in this image"},
            {"type": "image_url", "image_url": {"url": TINY_PNG}},
        ]}],
    )
    assert completion.choices[0].message.content == "echo: what is in this image", completion
    passed("image", content=completion.choices[0].message.content)


def check_embeddings():
    result = client.embeddings.create(model=MODEL, input=["alpha", "beta"])
    assert len(result.data) == 2, result
    assert all(len(d.embedding) > 0 for d in result.data), result
    assert result.data[0].embedding != result.data[1].embedding
    passed("embeddings", dims=len(result.data[0].embedding))


def check_models():
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids, ids
    assert all(i.startswith("@") and "/" in i for i in ids), ids
    passed("models", ids=ids)


def check_401():
    bad = openai.OpenAI(base_url=BASE_URL, api_key="prt-not-a-real-key", max_retries=0)
    try:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    except openai.AuthenticationError as err:
        assert err.status_code == 401
        assert "gateway key" in err.message, err.message
        passed("401", message=err.message)
        return
    raise AssertionError("expected openai.AuthenticationError")


def check_404():
    try:
        client.chat.completions.create(
            model="@no-such-provider/gpt-x", messages=[{"role": "user", "content": "x"}]
        )
    except openai.NotFoundError as err:
        assert err.status_code == 404
        assert "@provider/model" in err.message, err.message
        assert err.code == "provider_not_found", err.code
        passed("404", message=err.message)
        return
    raise AssertionError("expected openai.NotFoundError")


CHECKS = {
    "chat": check_chat,
    "stream": check_stream,
    "stream_tool_call": check_stream_tool_call,
    "image": check_image,
    "embeddings": check_embeddings,
    "models": check_models,
    "401": check_401,
    "404": check_404,
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(CHECKS)
    for name in names:
        CHECKS[name]()
