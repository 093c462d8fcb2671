import { assert, describe, it } from "@effect/vitest"
import { sseUsageReader } from "../../src/internal/provider/sse.js"
import { Provider } from "../../src/index.js"

const body = [
  "event: message_start\r\n",
  `data: {"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}\r\n\r\n`,
  "event: ping\ndata: not json\n\n",
  `data: {"type":"message_delta","usage":{"output_tokens":15}}\n\n`,
  "data: [DONE]"
].join("")

describe("sseUsageReader", () => {
  it("reads the same usage however the body is cut into pieces, CRLF or LF, a last line without newline", () => {
    for (let size = 1; size <= body.length; size += 7) {
      const reader = sseUsageReader(Provider.streamUsageOf(Provider.providers.anthropic))
      for (let i = 0; i < body.length; i += size) reader.push(body.slice(i, i + size))
      assert.deepStrictEqual(reader.end(), { input_tokens: 25, output_tokens: 15 }, `pieces of ${size}`)
    }
  })

  it("gives undefined when no event reported a usage, and reads a final line left without newline", () => {
    assert.isUndefined(sseUsageReader(Provider.streamUsageOf(Provider.providers.openai)).end())
    const reader = sseUsageReader(Provider.streamUsageOf(Provider.providers.openai))
    reader.push(`data: {"choices":[],"usage":{"total_tokens":12}}`)
    assert.deepStrictEqual(reader.end(), { tokens: 12 })
  })
})
