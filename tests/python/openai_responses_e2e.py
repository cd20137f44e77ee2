"""End-to-end checks of the gateway's /v1/responses with the official OpenAI Python SDK.

Run by the Rust tests in crates/portico/tests/it/responses.rs, which start mock upstreams and
the real `portico` binary and pass their addresses in the environment:

  PORTICO_BASE_URL   the gateway's OpenAI base URL (http://127.0.0.1:PORT/v1)
  PORTICO_KEY        a valid gateway key
  PORTICO_MODEL      a model routed to an OpenAI-kind mock (passed through) or to another kind
                     (translated); the answers are the same either way

Each check asserts what the SDK returned; the script prints one JSON line per passed check and
exits non-zero on the first failure.
"""

import json
import os
import sys

import openai

BASE_URL = os.environ["PORTICO_BASE_URL"]
KEY = os.environ["PORTICO_KEY"]
MODEL = os.environ["PORTICO_MODEL"]

client = openai.OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=20)

TOOLS = [
    {
        "type": "function",
        "name": "read",
        "description": "Read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]


def passed(name, **details):
    print(json.dumps({"check": name, **details}), flush=True)


def check_create():
    response = client.responses.create(
        model=MODEL, input="hello from the responses api", instructions="Be brief."
    )
    assert response.object == "response", response
    assert response.status == "completed", response
    assert response.output_text == "echo: hello from the responses api", response.output_text
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0, response.usage
    passed("create", id=response.id)


def check_stream():
    kinds = []
    text = ""
    final = None
    with client.responses.stream(model=MODEL, input="stream this please") as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        final = stream.get_final_response()
    assert kinds[0] == "response.created", kinds
    assert kinds[-1] == "response.completed", kinds
    assert text == "echo: stream this please", text
    assert final.output_text == text, final
    assert final.usage.output_tokens > 0, final.usage
    passed("stream", events=len(kinds))


def check_tool_round_trip():
    first = client.responses.create(model=MODEL, input="read SECRET.txt", tools=TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "read", first.output
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "SECRET-42"}],
    )
    assert second.output_text == "tool result: SECRET-42", second.output_text
    assert second.previous_response_id == first.id, second
    passed("tool_round_trip")


def check_retrieve_delete():
    made = client.responses.create(model=MODEL, input="keep this one")
    found = client.responses.retrieve(made.id)
    assert found.id == made.id and found.output_text == made.output_text, found
    client.responses.delete(made.id)
    try:
        client.responses.retrieve(made.id)
    except openai.NotFoundError:
        passed("retrieve_delete")
        return
    raise AssertionError("a deleted response was still found")


def check_401():
    bad = openai.OpenAI(base_url=BASE_URL, api_key="prt-wrong-key", max_retries=0, timeout=20)
    try:
        bad.responses.create(model=MODEL, input="x")
    except openai.AuthenticationError as e:
        assert e.status_code == 401, e
        passed("401")
        return
    raise AssertionError("a wrong key was accepted")


CHECKS = {
    "create": check_create,
    "stream": check_stream,
    "tool_round_trip": check_tool_round_trip,
    "retrieve_delete": check_retrieve_delete,
    "401": check_401,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or CHECKS:
        CHECKS[name]()
