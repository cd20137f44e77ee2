// End-to-end checks of the gateway with Portkey's own Node SDK (`portkey-ai` from npm) as the
// client, pointed at Portico by its `baseURL` alone: the same checks as
// tests/python/portkey_sdk_e2e.py, the way a Node user of Portkey would write them.
//
// Run by the Rust test `portkey_sdk::portkey_node_sdk` (crates/portico/tests/it/portkey_sdk.rs)
// with PORTICO_BASE_URL, PORTICO_KEY, PORTICO_MODEL and PORTICO_CONFIG_ID in the environment.
// Prints one JSON line per passed check and exits non-zero on the first failure.

import assert from "node:assert/strict";
import { Portkey } from "portkey-ai";

const BASE_URL = process.env.PORTICO_BASE_URL;
const KEY = process.env.PORTICO_KEY;
const MODEL = process.env.PORTICO_MODEL;
const CONFIG_ID = process.env.PORTICO_CONFIG_ID;

const client = (options = {}) =>
  new Portkey({ baseURL: BASE_URL, apiKey: KEY, maxRetries: 0, timeout: 20000, ...options });

const passed = (check, details = {}) => console.log(JSON.stringify({ check, ...details }));

const message = (content) => [{ role: "user", content }];

const checks = {
  async chat() {
    const pk = client({ traceID: "pk-node-chat", metadata: { _user: "pk-bob", team: "qa" } });
    const completion = await pk.chat.completions.create({
      model: MODEL,
      messages: message("hello from node"),
    });
    assert.equal(completion.choices[0].message.content, "echo: hello from node");
    assert.ok(completion.usage.total_tokens > 0);
    // The SDK hands back Portico's `x-portkey-*` answer headers without their prefix.
    const headers = completion.getHeaders();
    assert.equal(headers["trace-id"], "pk-node-chat", JSON.stringify(headers));
    assert.ok(headers["request-id"], JSON.stringify(headers));
    passed("chat", { content: completion.choices[0].message.content });
  },

  async stream() {
    const pk = client({ traceID: "pk-node-stream" });
    const stream = await pk.chat.completions.create({
      model: MODEL,
      messages: message("stream from node"),
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices ?? []) text += choice.delta?.content ?? "";
    }
    assert.equal(text, "echo: stream from node");
    assert.ok(usage && usage.total_tokens > 0, JSON.stringify(usage));
    passed("stream", { content: text });
  },

  async embeddings() {
    const pk = client({ traceID: "pk-node-embeddings" });
    const result = await pk.embeddings.create({ model: MODEL, input: ["one", "two"] });
    assert.equal(result.data.length, 2);
    assert.ok(result.data[0].embedding.length > 0);
    passed("embeddings", { vectors: result.data.length });
  },

  async config_id() {
    const pk = client({ traceID: "pk-node-config-id", config: CONFIG_ID });
    const completion = await pk.chat.completions.create({
      model: MODEL,
      messages: message("by config id"),
    });
    assert.equal(completion.choices[0].message.content, "echo: by config id");
    passed("config_id");
  },

  async config_inline() {
    const pk = client({ traceID: "pk-node-config-inline", config: { retry: { attempts: 2 } } });
    const completion = await pk.chat.completions.create({
      model: MODEL,
      messages: message("inline config"),
    });
    assert.equal(completion.choices[0].message.content, "echo: inline config");
    assert.equal(completion.getHeaders()["retry-attempt-count"], "0");
    passed("config_inline");
  },

  async virtual_key() {
    // A Portkey virtual key names a catalog provider's slug; the model stays bare.
    const [slug, model] = [MODEL.split("/")[0], MODEL.slice(MODEL.indexOf("/") + 1)];
    const pk = client({ traceID: "pk-node-virtual-key", virtualKey: slug.slice(1) });
    const completion = await pk.chat.completions.create({
      model,
      messages: message("by virtual key"),
    });
    assert.equal(completion.choices[0].message.content, "echo: by virtual key");
    assert.equal(completion.getHeaders()["provider"], slug);
    passed("virtual_key");
  },

  async custom_host() {
    // A per-request upstream URL is refused with what to do instead, never silently ignored.
    const pk = client({ customHost: "http://10.1.2.3/v1" });
    await assert.rejects(
      pk.chat.completions.create({ model: MODEL, messages: message("x") }),
      (err) => {
        assert.equal(err.status, 400, String(err));
        assert.match(String(err.message), /x-portkey-custom-host.*base_url/);
        return true;
      },
    );
    passed("custom_host");
  },

  async bad_config() {
    const pk = client({
      config: { strategy: { mode: "sideways" }, targets: [{ provider: "@openai-mock" }] },
    });
    await assert.rejects(
      pk.chat.completions.create({ model: MODEL, messages: message("x") }),
      (err) => {
        assert.equal(err.status, 400, String(err));
        assert.match(String(err.message), /sideways/);
        return true;
      },
    );
    passed("bad_config");
  },

  async wrong_key() {
    const pk = new Portkey({ baseURL: BASE_URL, apiKey: "prt-not-a-key-0123456789", maxRetries: 0 });
    await assert.rejects(
      pk.chat.completions.create({ model: MODEL, messages: message("x") }),
      (err) => {
        assert.equal(err.status, 401, String(err));
        return true;
      },
    );
    passed("wrong_key");
  },
};

const names = process.argv.slice(2);
for (const name of names.length ? names : Object.keys(checks)) {
  await checks[name]();
}
