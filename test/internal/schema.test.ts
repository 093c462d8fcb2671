import { assert, describe, it } from "@effect/vitest"
import { Either, ParseResult, Schema } from "effect"
import type { ParseOptions } from "effect/SchemaAST"
import { formatIssues, Millis, PositiveInt, plainFirst, Ratio } from "../../src/internal/schema.js"

const Algorithm = Schema.Literal("token-bucket", "sliding-window", "fixed-window", "concurrency")

// The kinds of node the limiter's configuration is made of, and a few it is not (so that they are seen to be
// left to the parser): defaults, nullable and non-exact optional keys, records, tuples, tagged unions, renamed
// keys, declarations and recursion.
const Quota = Schema.Struct({
  metric: Schema.NonEmptyTrimmedString,
  limit: PositiveInt,
  window: Schema.optionalWith(Millis, { exact: true }),
  algorithm: Schema.optionalWith(Algorithm, { exact: true, default: () => "token-bucket" as const }),
  refunds: Schema.optionalWith(Schema.Boolean, { exact: true, default: () => true })
})

const Bucket = Schema.Struct({
  quotas: Schema.NonEmptyArray(Quota),
  safetyRatio: Schema.optionalWith(Ratio, { exact: true, default: () => 1 }),
  skew: Schema.optionalWith(Schema.Union(Schema.Literal(0), Millis), { exact: true, default: () => 0 }),
  note: Schema.optional(Schema.String),
  owner: Schema.optionalWith(Schema.String, { nullable: true, default: () => "nobody" })
})

interface Tree {
  readonly value: number
  readonly children: ReadonlyArray<Tree>
}
const Tree: Schema.Schema<Tree> = Schema.Struct({
  value: Schema.Number,
  children: Schema.Array(Schema.suspend(() => Tree))
})

const Config = Schema.Struct({
  buckets: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Bucket }), { exact: true, default: () => ({}) }),
  pair: Schema.optional(Schema.Tuple(Schema.Number, Schema.optionalElement(Millis))),
  shape: Schema.optional(Schema.Union(
    Schema.Struct({ kind: Schema.Literal("circle"), radius: Schema.Number }),
    Schema.Struct({ kind: Schema.Literal("square"), side: Schema.Number })
  )),
  either: Schema.optional(Schema.Union(Schema.NumberFromString, Schema.Number)),
  renamed: Schema.optional(Schema.Struct({ a: Schema.propertySignature(Schema.Number).pipe(Schema.fromKey("a_b")) })),
  tags: Schema.optional(Schema.Struct({ fixed: Schema.String }, Schema.Record({ key: Schema.String, value: Schema.String }))),
  // Both members take `{ kind: "x", a: "1" }`, with different results: the parser picks the tagged one.
  ambiguous: Schema.optional(Schema.Union(
    Schema.Struct({ a: Schema.NumberFromString }),
    Schema.Struct({ kind: Schema.Literal("x"), a: Schema.String })
  )),
  // A default the type side refuses: the parser fails where the key is absent.
  defaults: Schema.optional(Schema.Struct({ n: Schema.optionalWith(PositiveInt, { exact: true, default: () => 0 }) })),
  date: Schema.optional(Schema.DateFromSelf),
  tree: Schema.optional(Tree)
})

const quota = { metric: "requests", limit: 500, window: "1 minute" }
const bucket = { quotas: [quota, { metric: "tokens", limit: 9000, window: 60_000, algorithm: "sliding-window", refunds: false }] }

const withSymbol = Object.assign({}, quota, { [Symbol.for("x")]: 1 })
const withHidden = Object.defineProperty({ ...quota }, "hidden", { value: 1, enumerable: false })
const inherited = Object.assign(Object.create({ window: "1 minute" }), { metric: "requests", limit: 5 })

const inputs: ReadonlyArray<readonly [string, unknown]> = [
  ["an empty configuration", {}],
  ["a bucket", { buckets: { a: bucket } }],
  ["every optional key", {
    buckets: { a: { ...bucket, safetyRatio: 0.5, skew: "5 millis", note: "n", owner: "me" }, b: { ...bucket, skew: 0, owner: null } },
    pair: [1, "1 second"],
    shape: { kind: "square", side: 2 },
    either: "12",
    renamed: { a_b: 1 },
    tags: { fixed: "f", other: "o" },
    date: new Date(0),
    tree: { value: 1, children: [{ value: 2, children: [] }] }
  }],
  ["a tuple without its optional element", { pair: [1] }],
  ["an input two members of a union take", { ambiguous: { kind: "x", a: "1" } }],
  ["an input one member of a union takes", { ambiguous: { a: "1" } }],
  ["a value where a default is refused", { defaults: { n: 3 } }],
  ["no value where a default is refused", { defaults: {} }],
  ["a symbol key in a record", { buckets: { a: bucket, [Symbol.for("b")]: bucket } }],
  ["a number for a union that also reads strings", { either: 3 }],
  ["undefined for a non-exact optional key", { buckets: { a: { ...bucket, note: undefined } } }],
  ["undefined for an exact optional key", { buckets: { a: { quotas: [{ ...quota, window: undefined }] } } }],
  ["a bad limit", { buckets: { a: { quotas: [{ ...quota, limit: -5 }] } } }],
  ["a bad window and algorithm", { buckets: { a: { quotas: [{ ...quota, window: 0, algorithm: "leaky" }] } } }],
  ["an untrimmed metric", { buckets: { a: { quotas: [{ ...quota, metric: " requests" }] } } }],
  ["no quotas", { buckets: { a: { quotas: [] } } }],
  ["a missing limit", { buckets: { a: { quotas: [{ metric: "requests" }] } } }],
  ["an excess key", { buckets: { a: { quotas: [{ ...quota, windw: "1 minute" }] } } }],
  ["an excess symbol key", { buckets: { a: { quotas: [withSymbol] } } }],
  ["an excess non-enumerable key", { buckets: { a: { quotas: [withHidden] } } }],
  ["an inherited key", { buckets: { a: { quotas: [inherited] } } }],
  ["an array for a struct", { buckets: { a: [bucket] } }],
  ["an object for a tuple", { pair: { 0: 1 } }],
  ["a tuple too long", { pair: [1, 2, 3] }],
  ["an unknown tag", { shape: { kind: "triangle", side: 2 } }],
  ["a bad date", { date: "1970-01-01" }],
  ["a bad tree", { tree: { value: 1, children: [{ value: "2", children: [] }] } }],
  ["a renamed key under its new name", { renamed: { a: 1 } }],
  ["a bad indexed value", { tags: { fixed: "f", other: 1 } }],
  ["null", null],
  ["an array", []],
  ["a string", "buckets"]
]

const optionSets: ReadonlyArray<ParseOptions> = [
  { errors: "all", onExcessProperty: "error" },
  {},
  { errors: "all" },
  { onExcessProperty: "preserve" },
  { exact: true },
  { propertyOrder: "original" }
]

describe("plainFirst", () => {
  it("decodes every input as the schema's parser does, under every option", () => {
    const plain = plainFirst(Config)
    for (const options of optionSets) {
      for (const [name, input] of inputs) {
        const expected = Schema.decodeUnknownEither(Config, options)(input)
        const actual = Schema.decodeUnknownEither(plain, options)(input)
        const label = `${name}, ${JSON.stringify(options)}`
        if (Either.isRight(expected)) {
          assert.isTrue(Either.isRight(actual), label)
          assert.deepStrictEqual(Either.getOrThrow(actual), expected.right, label)
          // Key order too: `propertyOrder: "original"` asks for it.
          assert.deepStrictEqual(Object.keys(Either.getOrThrow(actual)), Object.keys(expected.right), label)
        } else {
          assert.isTrue(Either.isLeft(actual), label)
          assert.deepStrictEqual(Either.isLeft(actual) ? formatIssues(actual.left) : [], formatIssues(expected.left), label)
        }
      }
    }
  })

  it("decodes a valid input once: the parser does not run after the plain decoder took it", () => {
    let calls = 0
    const Counted = Schema.transformOrFail(Schema.Unknown, Schema.Number, {
      strict: true,
      decode: (input) => {
        calls++
        return typeof input === "number" ? ParseResult.succeed(input) : ParseResult.fail(new ParseResult.Type(Schema.Number.ast, input))
      },
      encode: ParseResult.succeed
    })
    const Counting = plainFirst(Schema.Struct({
      buckets: Schema.Record({ key: Schema.String, value: Schema.Struct({ quotas: Schema.NonEmptyArray(Quota), n: Counted }) }),
      mode: Schema.optionalWith(Schema.Literal("basic", "intelligent"), { exact: true, default: () => "intelligent" as const })
    }))
    const decode = Schema.decodeUnknownEither(Counting, { errors: "all", onExcessProperty: "error" })
    assert.isTrue(Either.isRight(decode({ buckets: { a: { quotas: [quota], n: 1 }, b: { quotas: [quota], n: 2 } } })))
    assert.strictEqual(calls, 2)
    // An invalid input goes through the parser as well, which finds what is wrong.
    calls = 0
    const invalid = decode({ buckets: { a: { quotas: [quota], n: "1" } } })
    assert.deepStrictEqual(Either.isLeft(invalid) ? formatIssues(invalid.left) : [], ["buckets.a.n: Expected number, actual \"1\""])
    assert.strictEqual(calls, 2)
  })
})
