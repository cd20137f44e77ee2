"""End-to-end checks of the gateway's /v1/messages with the official Anthropic Python SDK.

Run by the Rust tests in crates/portico/tests/it/messages.rs, which start mock upstreams and
the real `portico` binary and pass their addresses in the environment:

  PORTICO_BASE_URL   the gateway's root URL (http://127.0.0.1:PORT); the SDK adds /v1/messages
  PORTICO_KEY        a valid gateway key (sent by the SDK as `x-api-key`)
  PORTICO_MODEL      a model routed either to an Anthropic-kind mock (pass-through) or to an
                     OpenAI-kind mock (translation); the answers are the same either way

Each check asserts what the SDK returned; the script prints one JSON line per passed check and
exits non-zero on the first failure, so the Rust side sees both the verdict and the details.
"""

import json
import os
import sys

import anthropic

BASE_URL = os.environ["PORTICO_BASE_URL"]
KEY = os.environ["PORTICO_KEY"]
MODEL = os.environ["PORTICO_MODEL"]

client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=20)

TOOLS = [
    {
        "name": "read",
        "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]


def passed(name, **details):
    print(json.dumps({"check": name, **details}), flush=True)


def check_message():
    raw = client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=256,
        messages=[{"role": "user", "content": "hello from the anthropic sdk"}],
        extra_headers={"x-portkey-trace-id": "anthropic-sdk-trace-1"},
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant", message
    assert message.content[0].type == "text", message.content
    assert message.content[0].text == "echo: hello from the anthropic sdk", message.content
    assert message.stop_reason == "end_turn", message.stop_reason
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0, message.usage
    assert raw.headers["x-portkey-trace-id"] == "anthropic-sdk-trace-1", raw.headers
    assert raw.headers["x-portkey-request-id"], raw.headers
    assert raw.headers["x-portkey-provider"].startswith("@"), raw.headers
    passed("message", text=message.content[0].text)


def check_stream():
    # The raw events first: Anthropic's order, every event named.
    events = client.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=[{"role": "user", "content": "stream this please"}],
        stream=True,
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start", kinds
    assert kinds[-2:] == ["message_delta", "message_stop"], kinds
    assert "content_block_start" in kinds and "content_block_stop" in kinds, kinds
    # Then the SDK's helper, which assembles the message.
    with client.messages.stream(
        model=MODEL,
        max_tokens=256,
        messages=[{"role": "user", "content": "stream this please"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: stream this please", text
    assert final.stop_reason == "end_turn", final.stop_reason
    assert final.usage.output_tokens > 0, final.usage
    passed("stream", text=text, events=len(kinds))


def check_tool_round_trip():
    question = {"role": "user", "content": "read hello.txt"}
    # Turn 1, streamed: the model calls the tool.
    with client.messages.stream(
        model=MODEL, max_tokens=256, tools=TOOLS, messages=[question]
    ) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use", first
    calls = [block for block in first.content if block.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "read" and calls[0].id, first.content
    assert isinstance(calls[0].input, dict), calls[0].input
    # Turn 2, whole: the tool's result goes back, the model answers with it.
    second = client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=TOOLS,
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": calls[0].id, "content": "SECRET-42"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn", second
    assert second.content[0].text == "tool result: SECRET-42", second.content
    passed("tool_round_trip", tool_use_id=calls[0].id, answer=second.content[0].text)


def check_401():
    bad = anthropic.Anthropic(base_url=BASE_URL, api_key="prt-not-a-real-key", max_retries=0)
    try:
        bad.messages.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "x"}]
        )
    except anthropic.AuthenticationError as err:
        assert err.status_code == 401
        assert err.body["type"] == "error", err.body
        assert err.body["error"]["type"] == "authentication_error", err.body
        assert "gateway key" in err.body["error"]["message"], err.body
        passed("401", message=err.body["error"]["message"])
        return
    raise AssertionError("expected anthropic.AuthenticationError")


def check_404():
    try:
        client.messages.create(
            model="@no-such-provider/claude-x",
            max_tokens=16,
            messages=[{"role": "user", "content": "x"}],
        )
    except anthropic.NotFoundError as err:
        assert err.status_code == 404
        assert err.body["error"]["type"] == "not_found_error", err.body
        assert "@provider/model" in err.body["error"]["message"], err.body
        passed("404", message=err.body["error"]["message"])
        return
    raise AssertionError("expected anthropic.NotFoundError")


CHECKS = {
    "message": check_message,
    "stream": check_stream,
    "tool_round_trip": check_tool_round_trip,
    "401": check_401,
    "404": check_404,
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(CHECKS)
    for name in names:
        CHECKS[name]()
