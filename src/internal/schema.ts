/**
 * The schema pieces every decoded configuration shares (limiter configurations, Redis backend options), so that
 * every bad value is reported the same way: `path.to.field: expected <what>, got <value>`.
 *
 * @internal
 */
import { Duration, Either, Option, ParseResult, Schema } from "effect"
import type * as AST from "effect/SchemaAST"

/**
 * A value as an issue shows it: strings quoted, other primitives as written, objects by their kind only (an
 * object can be large, and may hold secrets).
 *
 * @example
 * ```ts
 * describe("x") // "\"x\""
 * describe([1]) // "an array"
 * ```
 * @since 0.2.0
 */
export const describe = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) return String(value)
  return Array.isArray(value) ? "an array" : typeof value
}

/**
 * The `message` annotation of a schema whose every failure reads `expected <what>, got <value>`.
 *
 * @example
 * ```ts
 * const PositiveInt = Schema.Number.pipe(Schema.int(), Schema.positive()).annotations({ message: expected("a positive integer") })
 * ```
 * @since 0.2.0
 */
export const expected = (what: string) => (issue: ParseResult.ParseIssue) => ({
  message: `expected ${what}, got ${describe(issue.actual)}`,
  override: true
})

/**
 * A positive integer.
 *
 * @example
 * ```ts
 * Schema.decodeUnknownEither(PositiveInt)(0) // Either.left: "expected a positive integer, got 0"
 * ```
 * @since 0.2.0
 */
export const PositiveInt = Schema.Number.pipe(Schema.int(), Schema.positive()).annotations({
  message: expected("a positive integer")
})

/**
 * A non-negative integer.
 *
 * @example
 * ```ts
 * Schema.decodeUnknownEither(NonNegativeInt)(0) // Either.right(0)
 * ```
 * @since 0.2.0
 */
export const NonNegativeInt = Schema.Number.pipe(Schema.int(), Schema.nonNegative()).annotations({
  message: expected("a non-negative integer")
})

/**
 * A fraction in (0, 1].
 *
 * @example
 * ```ts
 * Schema.decodeUnknownEither(Ratio)(1.5) // Either.left: "expected a number in (0, 1], got 1.5"
 * ```
 * @since 0.2.0
 */
export const Ratio = Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1)).annotations({
  message: expected("a number in (0, 1]")
})

/**
 * A finite number, at least 1.
 *
 * @example
 * ```ts
 * Schema.decodeUnknownEither(Multiplier)(1.5) // Either.right(1.5)
 * ```
 * @since 0.2.0
 */
export const Multiplier = Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(1)).annotations({
  message: expected("a finite number >= 1")
})

const durationIssue = (actual: unknown) =>
  new ParseResult.Type(
    Schema.Number.ast,
    actual,
    `expected a positive duration ("1 minute", "10 seconds") or milliseconds, got ${describe(actual)}`
  )

/**
 * The milliseconds of a positive, finite duration: anything `Duration.decodeUnknown` reads (milliseconds, an
 * Effect duration string such as `"1 minute"`, a `Duration`).
 *
 * @example
 * ```ts
 * Schema.decodeUnknownSync(Millis)("1 minute") // 60000
 * ```
 * @since 0.2.0
 */
export const Millis = Schema.transformOrFail(Schema.Unknown, Schema.Number, {
  strict: true,
  decode: (input) => {
    const ms = millisOf(input)
    return ms === undefined ? ParseResult.fail(durationIssue(input)) : ParseResult.succeed(ms)
  },
  encode: ParseResult.succeed
})

/**
 * The milliseconds of a positive, finite duration, or `undefined` if the input is not one; what `Millis` decodes.
 *
 * @example
 * ```ts
 * millisOf("10 seconds") // 10000
 * millisOf(-5) // undefined
 * ```
 * @since 0.2.0
 */
export const millisOf = (input: unknown): number | undefined => {
  // Called for every window of every bucket: no closures (`Option.match` with handlers costs ten times this).
  // A whole number of milliseconds is its own duration; a fraction goes through `Duration`, which rounds it to
  // nanoseconds.
  if (typeof input === "number" && Number.isInteger(input)) return input > 0 ? input : undefined
  const duration = Duration.decodeUnknown(input)
  if (Option.isNone(duration)) return undefined
  const ms = Duration.toMillis(duration.value)
  return ms > 0 && Number.isFinite(ms) ? ms : undefined
}

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) => (typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`),
    ""
  )

/**
 * Every issue of a parse error as `path: message` (`buckets.gpt-4o.quotas[1].limit: expected a positive integer,
 * got -5`), or the message alone for an issue at the root.
 *
 * @example
 * ```ts
 * Either.mapLeft(decode(input), (error) => new ConfigurationError({ issues: formatIssues(error) }))
 * ```
 * @since 0.2.0
 */
export const formatIssues = (error: ParseResult.ParseError): Array<string> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) =>
    issue.path.length === 0 ? issue.message : `${formatPath(issue.path)}: ${issue.message}`
  )

/** What a plain decoder returns for an input it does not take: the schema's own parser then decides. */
const NOT_PLAIN: unique symbol = Symbol("quotaflow/NotPlain")

type PlainDecoder = (input: unknown, options: AST.ParseOptions) => unknown

/** A node decoded by the schema's own parser: the plain decoder of every node it does not interpret. */
const viaParser = (ast: AST.AST): PlainDecoder => {
  const parse = ParseResult.decodeUnknownEither(Schema.make<unknown>(ast))
  return (input, options) => {
    const result = parse(input, options)
    return Either.isRight(result) ? result.right : NOT_PLAIN
  }
}

/** The value of an effect that is already an `Either` on the right; anything else (a failure, an effect to run) is not plain. */
const rightOf = (result: unknown): unknown => (Either.isEither(result) && Either.isRight(result) ? result.right : NOT_PLAIN)

const plainTypeLiteral = (ast: AST.TypeLiteral, compile: (ast: AST.AST) => PlainDecoder): PlainDecoder => {
  if (ast.propertySignatures.length === 0 && ast.indexSignatures.length === 0) {
    return (input) => (input === null || input === undefined ? NOT_PLAIN : input)
  }
  // Records keyed by strings only: other key schemas (symbols, template literals, refinements) filter keys.
  if (ast.indexSignatures.some((signature) => signature.parameter._tag !== "StringKeyword")) return viaParser(ast)
  const properties = ast.propertySignatures.map((ps) => ({ name: ps.name, optional: ps.isOptional, decode: compile(ps.type) }))
  const names = new Set<PropertyKey>(properties.map((property) => property.name))
  const values = ast.indexSignatures.map((signature) => compile(signature.type))
  // Every own key the object has beyond the `present` properties: any string key is expected where strings
  // index the record, and then only a symbol can be in excess.
  const hasExcess = values.length > 0
    ? (record: object, _present: number) => Object.getOwnPropertySymbols(record).some((key) => !names.has(key))
    : hasExcessKeys
  return (input, options) => {
    if (typeof input !== "object" || input === null || Array.isArray(input)) return NOT_PLAIN
    const record = input as Record<PropertyKey, unknown>
    const output: Record<PropertyKey, unknown> = {}
    let present = 0
    for (const property of properties) {
      if (!Object.hasOwn(record, property.name)) {
        // A missing required key is `undefined` to the parser unless `exact` is set; it decides.
        if (property.optional) continue
        return NOT_PLAIN
      }
      present++
      const value = property.decode(record[property.name], options)
      if (value === NOT_PLAIN) return NOT_PLAIN
      output[property.name] = value
    }
    // An excess key is an error (or kept) only with `onExcessProperty`, and the parser says so (or keeps it).
    if ((options.onExcessProperty === "error" || options.onExcessProperty === "preserve") && hasExcess(record, present)) {
      return NOT_PLAIN
    }
    for (const decode of values) {
      for (const key of Object.keys(record)) {
        const value = decode(record[key], options)
        if (value === NOT_PLAIN) return NOT_PLAIN
        // A key that is also a property keeps the property's value, as the parser does.
        if (!names.has(key)) output[key] = value
      }
    }
    return output
  }
}

const plainTuple = (ast: AST.TupleType, compile: (ast: AST.AST) => PlainDecoder): PlainDecoder => {
  // Elements after a rest element are left to the parser.
  if (ast.rest.length > 1) return viaParser(ast)
  const elements = ast.elements.map((element) => ({ optional: element.isOptional, decode: compile(element.type) }))
  const required = elements.filter((element) => !element.optional).length
  const rest = ast.rest.length === 1 ? compile(ast.rest[0].type) : undefined
  return (input, options) => {
    if (!Array.isArray(input) || input.length < required || (rest === undefined && input.length > elements.length)) {
      return NOT_PLAIN
    }
    const output: Array<unknown> = []
    for (let i = 0; i < input.length; i++) {
      const decode = i < elements.length ? elements[i].decode : rest
      if (decode === undefined) return NOT_PLAIN
      const value = decode(input[i], options)
      if (value === NOT_PLAIN) return NOT_PLAIN
      output.push(value)
    }
    return output
  }
}

const plainUnion = (ast: AST.Union, compile: (ast: AST.AST) => PlainDecoder): PlainDecoder => {
  const members = ast.types.map(compile)
  // The parser answers with the first member that takes the input, in an order of its own: plain only when at
  // most one answer is possible, so that order never matters.
  return (input, options) => {
    let found: unknown = NOT_PLAIN
    for (const member of members) {
      const value = member(input, options)
      if (value === NOT_PLAIN) continue
      if (found !== NOT_PLAIN && found !== value) return NOT_PLAIN
      found = value
    }
    return found
  }
}

const plainTransformation = (ast: AST.Transformation, compile: (ast: AST.AST) => PlainDecoder): PlainDecoder => {
  const from = compile(ast.from)
  const to = compile(ast.to)
  const transformation = ast.transformation
  switch (transformation._tag) {
    case "FinalTransformation":
      return (input, options) => {
        const a = from(input, options)
        if (a === NOT_PLAIN) return NOT_PLAIN
        const b = rightOf(transformation.decode(a, options, ast, input))
        return b === NOT_PLAIN ? NOT_PLAIN : to(b, options)
      }
    case "ComposeTransformation":
      return (input, options) => {
        const a = from(input, options)
        return a === NOT_PLAIN ? NOT_PLAIN : to(a, options)
      }
    case "TypeLiteralTransformation":
      return plainStruct(ast, transformation, compile) ?? viaParser(ast)
  }
}

/** A property of a struct with defaults: its encoded side, its property signature's step, its type side. */
interface StructField {
  readonly name: PropertyKey
  readonly optional: boolean
  readonly decode: PlainDecoder
  readonly step: ((value: Option.Option<unknown>) => Option.Option<unknown>) | undefined
  readonly optionalAfter: boolean
  readonly check: PlainDecoder
  /** Whether `check` can be skipped for the value `decode` returned (see `returnsInput`). */
  readonly checked: boolean
}

/** Where a property's value is not there (absent, or taken away by its property signature's step). */
const ABSENT: unique symbol = Symbol("quotaflow/Absent")

/**
 * A struct with optional keys that have defaults (`Schema.optionalWith(..., { default })`): the parser decodes
 * its encoded side to a new object, applies each property signature's step to it, and checks the result against
 * the type side. Here the three happen in one pass per property, with no object in between (most of the
 * cost when 50,000 buckets each hold a few structs). Structs of another shape (renamed keys, index signatures)
 * are left to the parser.
 */
const plainStruct = (
  ast: AST.Transformation,
  transformation: AST.TypeLiteralTransformation,
  compile: (ast: AST.AST) => PlainDecoder
): PlainDecoder | undefined => {
  const { from, to } = ast
  if (from._tag !== "TypeLiteral" || to._tag !== "TypeLiteral") return undefined
  if (from.indexSignatures.length > 0 || to.indexSignatures.length > 0) return undefined
  if (from.propertySignatures.length !== to.propertySignatures.length) return undefined
  const steps = new Map<PropertyKey, (value: Option.Option<unknown>) => Option.Option<unknown>>()
  for (const pst of transformation.propertySignatureTransformations) {
    if (pst.from !== pst.to || steps.has(pst.from)) return undefined
    steps.set(pst.from, pst.decode)
  }
  const fields: Array<StructField> = []
  for (let i = 0; i < from.propertySignatures.length; i++) {
    const encoded = from.propertySignatures[i]
    const decoded = to.propertySignatures[i]
    if (decoded.name !== encoded.name) return undefined
    fields.push({
      name: encoded.name,
      optional: encoded.isOptional,
      decode: compile(encoded.type),
      step: steps.get(encoded.name),
      optionalAfter: decoded.isOptional,
      check: compile(decoded.type),
      // Checking a value against the schema that has just decoded it changes nothing where that schema
      // returns its input (no transformation anywhere in it); a default, or another value a step made, is
      // still checked, as the parser checks it.
      checked: decoded.type === encoded.type && returnsInput(encoded.type)
    })
  }
  const names = new Set<PropertyKey>(fields.map((field) => field.name))
  if ([...steps.keys()].some((name) => !names.has(name))) return undefined
  return (input, options) => {
    if (typeof input !== "object" || input === null || Array.isArray(input)) return NOT_PLAIN
    const record = input as Record<PropertyKey, unknown>
    const output: Record<PropertyKey, unknown> = {}
    let present = 0
    for (const field of fields) {
      let decoded: unknown = ABSENT
      if (Object.hasOwn(record, field.name)) {
        present++
        decoded = field.decode(record[field.name], options)
        if (decoded === NOT_PLAIN) return NOT_PLAIN
      } else if (!field.optional) {
        return NOT_PLAIN
      }
      let value = decoded
      if (field.step !== undefined) {
        const stepped = field.step(decoded === ABSENT ? Option.none() : Option.some(decoded))
        value = Option.isSome(stepped) ? stepped.value : ABSENT
      }
      if (value === ABSENT) {
        if (field.optionalAfter) continue
        return NOT_PLAIN
      }
      if (!(field.checked && value === decoded)) {
        value = field.check(value, options)
        if (value === NOT_PLAIN) return NOT_PLAIN
      }
      output[field.name] = value
    }
    if ((options.onExcessProperty === "error" || options.onExcessProperty === "preserve") && hasExcessKeys(record, present)) {
      return NOT_PLAIN
    }
    return output
  }
}

/** Whether every value a node decodes is its input: keywords and literals, refined or in unions. */
const returnsInput = (ast: AST.AST): boolean => {
  switch (ast._tag) {
    case "StringKeyword":
    case "NumberKeyword":
    case "BooleanKeyword":
    case "UnknownKeyword":
    case "AnyKeyword":
    case "Literal":
      return true
    case "Refinement":
      return returnsInput(ast.from)
    case "Union":
      return ast.types.every(returnsInput)
    default:
      return false
  }
}

/**
 * Whether an object has own keys beyond the `present` properties just read. Keys are counted, not listed and
 * looked up: `Reflect.ownKeys` is slow on the objects `JSON.parse` makes.
 */
const hasExcessKeys = (record: object, present: number): boolean =>
  Object.getOwnPropertyNames(record).length + Object.getOwnPropertySymbols(record).length > present

const compilePlain = (root: AST.AST): PlainDecoder => {
  const memo = new Map<AST.AST, PlainDecoder>()
  const compile = (ast: AST.AST): PlainDecoder => {
    const known = memo.get(ast)
    if (known !== undefined) return known
    const decoder = compileNode(ast)
    memo.set(ast, decoder)
    return decoder
  }
  const compileNode = (ast: AST.AST): PlainDecoder => {
    switch (ast._tag) {
      case "StringKeyword":
        return (input) => (typeof input === "string" ? input : NOT_PLAIN)
      case "NumberKeyword":
        return (input) => (typeof input === "number" ? input : NOT_PLAIN)
      case "BooleanKeyword":
        return (input) => (typeof input === "boolean" ? input : NOT_PLAIN)
      case "UnknownKeyword":
      case "AnyKeyword":
        return (input) => input
      case "Literal": {
        const literal = ast.literal
        return (input) => (input === literal ? input : NOT_PLAIN)
      }
      case "Refinement": {
        const from = compile(ast.from)
        return (input, options) => {
          const a = from(input, options)
          return a === NOT_PLAIN || Option.isSome(ast.filter(a, options, ast)) ? NOT_PLAIN : a
        }
      }
      case "Declaration": {
        const decode = ast.decodeUnknown(...ast.typeParameters)
        return (input, options) => rightOf(decode(input, options, ast))
      }
      case "TypeLiteral":
        return plainTypeLiteral(ast, compile)
      case "TupleType":
        return plainTuple(ast, compile)
      case "Union":
        return plainUnion(ast, compile)
      case "Transformation":
        return plainTransformation(ast, compile)
      default:
        return viaParser(ast)
    }
  }
  return compile(root)
}

/**
 * `schema`, decoded by a plain interpreter of its AST first and by its own parser only when the interpreter
 * does not take the input, so that the parser still produces every issue, path and message. The interpreter
 * is what a valid input costs: the parser allocates results and closures at every node and checks every key
 * of every object against a union of the expected ones, which is seconds for a generated configuration of
 * 50,000 buckets.
 *
 * The interpreter runs the schema's own pieces (refinements' filters, transformations, defaults) and takes
 * less than the parser does, never more: anything it is not sure of (a failure, a key the parser would strip
 * or keep, a union more than one member of which takes the input, a node it does not know) is the parser's to
 * decode, the whole input again. What it returns is therefore what the parser returns.
 *
 * @example
 * ```ts
 * const Quota = Schema.Struct({ limit: PositiveInt, window: Schema.optionalWith(Millis, { exact: true }) })
 * Schema.decodeUnknownEither(plainFirst(Quota), { errors: "all" })({ limit: 5, window: "1 minute" })
 * // Either.right({ limit: 5, window: 60000 })
 * ```
 * @since 0.2.0
 */
export const plainFirst = <A, I>(schema: Schema.Schema<A, I, never>): Schema.Schema<A, I> => {
  const plain = compilePlain(schema.ast)
  const decode = ParseResult.decodeUnknownEither(schema)
  const encode = ParseResult.encodeUnknownEither(schema)
  return Schema.declare([], {
    decode: () => (input, options) => {
      // In the input's order of keys, as the parser orders them, is no plain matter: the parser's own.
      if (options.propertyOrder === "original") return decode(input, options)
      const output = plain(input, options)
      // A decoder of `schema`'s AST returns `schema`'s type, or NOT_PLAIN.
      return output !== NOT_PLAIN ? ParseResult.succeed(output as A) : decode(input, options)
    },
    encode: () => (input, options) => encode(input, options)
  })
}
