/**
 * What a request body sends as its prompt, whatever its shape: OpenAI chat (`messages` with string or part
 * contents, `tool_calls`, `tools`), the OpenAI Responses API (`instructions`, `input`), Anthropic messages
 * (`system`, content blocks, `tools`), Gemini (`contents` with `parts`, `systemInstruction`), Bedrock Converse
 * (`messages` with `{ text }` blocks, `system`, `toolConfig`) and plain prompts (`prompt`, `inputText`).
 *
 * Base64 payloads (images, documents, audio) are counted as media items, never as text.
 */
import { at, isRecord, list, str, stringify } from "./json.js"

/**
 * The text and media of a prompt.
 *
 * @example
 * const prompt: Prompt = { texts: ["Hi"], messages: 1, images: 0, lowDetailImages: 0, otherMedia: 0 }
 */
export interface Prompt {
  /** Every piece of text sent to the model (message contents, names, tool calls and definitions). */
  readonly texts: ReadonlyArray<string>
  /** Conversation turns (messages or contents). */
  readonly messages: number
  /** Images sent without a `detail: "low"` hint. */
  readonly images: number
  /** Images sent with OpenAI's `detail: "low"`. */
  readonly lowDetailImages: number
  /** Documents, files and audio clips. */
  readonly otherMedia: number
}

interface Walk {
  texts: Array<string>
  messages: number
  images: number
  lowDetailImages: number
  otherMedia: number
}

const IMAGE_TYPES = new Set(["image", "image_url", "input_image"])
const MEDIA_TYPES = new Set(["document", "file", "input_file", "input_audio", "audio"])

const addText = (walk: Walk, value: unknown) => {
  if (typeof value === "string" && value.length > 0) walk.texts.push(value)
}

const addJson = (walk: Walk, value: unknown) => {
  if (value === undefined || value === null) return
  addText(walk, typeof value === "string" ? value : stringify(value))
}

const walkBlock = (walk: Walk, block: unknown): void => {
  if (typeof block === "string") return addText(walk, block)
  if (!isRecord(block)) return
  const type = str(block["type"])
  if (type !== undefined && IMAGE_TYPES.has(type)) {
    const detail = str(at(block, "image_url", "detail")) ?? str(block["detail"])
    if (detail === "low") walk.lowDetailImages += 1
    else walk.images += 1
    return
  }
  if (type !== undefined && MEDIA_TYPES.has(type)) {
    walk.otherMedia += 1
    return
  }
  // Bedrock Converse and Gemini name the block by its key.
  if (isRecord(block["image"])) {
    walk.images += 1
    return
  }
  if (isRecord(block["document"]) || isRecord(block["video"]) || isRecord(block["audio"])) {
    walk.otherMedia += 1
    return
  }
  const inline = block["inlineData"] ?? block["inline_data"] ?? block["fileData"] ?? block["file_data"]
  if (isRecord(inline)) {
    const mime = str(inline["mimeType"]) ?? str(inline["mime_type"]) ?? ""
    if (mime.startsWith("image/")) walk.images += 1
    else walk.otherMedia += 1
    return
  }
  addText(walk, block["text"])
  addText(walk, block["thinking"])
  addText(walk, block["refusal"])
  if (type === "tool_use" || type === "server_tool_use") {
    addText(walk, block["name"])
    addJson(walk, block["input"])
  }
  if (type === "tool_result" || type === "function_call_output") {
    walkContent(walk, block["content"] ?? block["output"])
  }
  if (type === "function_call") {
    addText(walk, block["name"])
    addJson(walk, block["arguments"])
  }
  const toolUse = block["toolUse"]
  if (isRecord(toolUse)) {
    addText(walk, toolUse["name"])
    addJson(walk, toolUse["input"])
  }
  const toolResult = block["toolResult"]
  if (isRecord(toolResult)) walkContent(walk, toolResult["content"])
  const functionCall = block["functionCall"] ?? block["function_call"]
  if (isRecord(functionCall)) {
    addText(walk, functionCall["name"])
    addJson(walk, functionCall["args"] ?? functionCall["arguments"])
  }
  const functionResponse = block["functionResponse"] ?? block["function_response"]
  if (isRecord(functionResponse)) {
    addText(walk, functionResponse["name"])
    addJson(walk, functionResponse["response"])
  }
  if (isRecord(block["json"])) addJson(walk, block["json"])
}

const walkContent = (walk: Walk, content: unknown): void => {
  if (Array.isArray(content)) content.forEach((block) => walkBlock(walk, block))
  else walkBlock(walk, content)
}

const walkMessage = (walk: Walk, message: unknown): void => {
  walk.messages += 1
  if (typeof message === "string") return addText(walk, message)
  if (!isRecord(message)) return
  addText(walk, message["name"])
  walkContent(walk, message["content"] ?? message["parts"])
  if (message["type"] !== undefined && message["content"] === undefined) walkBlock(walk, message)
  for (const call of list(message["tool_calls"])) {
    addText(walk, str(at(call, "function", "name")))
    addJson(walk, at(call, "function", "arguments"))
  }
  const legacyCall = message["function_call"]
  if (isRecord(legacyCall)) {
    addText(walk, legacyCall["name"])
    addJson(walk, legacyCall["arguments"])
  }
}

/**
 * The prompt of a request body of any supported shape; an unknown shape gives an empty prompt.
 *
 * @example
 * promptOf({ system: "Be brief.", messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }] })
 * // { texts: ["Be brief.", "Hi"], messages: 1, images: 0, lowDetailImages: 0, otherMedia: 0 }
 */
export const promptOf = (request: unknown): Prompt => {
  const walk: Walk = { texts: [], messages: 0, images: 0, lowDetailImages: 0, otherMedia: 0 }
  if (!isRecord(request)) return walk
  // System prompts: Anthropic `system` (string or blocks), Converse `system` (blocks), Gemini
  // `systemInstruction`, Responses `instructions`.
  walkContent(walk, request["system"])
  const systemInstruction = request["systemInstruction"] ?? request["system_instruction"]
  if (isRecord(systemInstruction)) walkContent(walk, systemInstruction["parts"])
  else walkContent(walk, systemInstruction)
  addText(walk, request["instructions"])
  // Turns.
  for (const key of ["messages", "contents"] as const) {
    const turns = request[key]
    if (Array.isArray(turns)) turns.forEach((turn) => walkMessage(walk, turn))
    else if (typeof turns === "string" || isRecord(turns)) walkMessage(walk, turns)
  }
  // The Responses API and embeddings: `input` is a string, a list of strings or a list of items.
  const input = request["input"]
  if (typeof input === "string") addText(walk, input)
  else if (Array.isArray(input)) {
    input.forEach((item) => (typeof item === "string" ? addText(walk, item) : walkMessage(walk, item)))
  }
  // Plain prompts (completions, Bedrock Llama and Mistral, Titan).
  const prompt = request["prompt"]
  if (typeof prompt === "string") addText(walk, prompt)
  else if (Array.isArray(prompt)) prompt.forEach((p) => addText(walk, p))
  addText(walk, request["inputText"])
  // Tool and output-schema definitions are part of the prompt.
  for (const key of ["tools", "functions", "toolConfig", "response_format"] as const) addJson(walk, request[key])
  return walk
}
