/**
 * Shopify's calculated query cost (SOURCES.md), read off the operation's selection: a scalar or
 * an enum costs 0, an object 1 plus what is selected in it, a connection (a field with `first` or
 * `last`) 2 plus that many times the cost of one of its nodes, an interface or union the costliest
 * of its fragments, a mutation 10. The requested cost prices each connection at its `first` or
 * `last`; the actual cost at the nodes it returned, and an object that came back null at 0.
 *
 * The parser reads one operation: fields with aliases, arguments (variables resolved), directives
 * and inline fragments. Named fragments and block strings are not read: the hub sends none.
 */
type Json = Record<string, unknown>;

export interface Field {
  name: string;
  /** The alias, or the name: where the answer carries the field. */
  key: string;
  args: Json;
  directives: Record<string, Json>;
  selection: Selection | null;
}
export interface Selection { fields: Field[]; fragments: Selection[] }
export interface Operation { mutation: boolean; selection: Selection }

const TOKEN = /\s+|#[^\n]*|,|(\.\.\.|[{}()[\]:=@$!]|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_]\w*)/y;

function tokens(query: string): string[] {
  const out: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < query.length) {
    const m = TOKEN.exec(query);
    if (!m) throw new SyntaxError(`unexpected character at ${TOKEN.lastIndex}: ${query.slice(TOKEN.lastIndex, TOKEN.lastIndex + 10)}`);
    if (m[1]) out.push(m[1]);
  }
  return out;
}

/** The operation in `query`, its arguments' variables replaced by their values. */
export function parseOperation(query: string, variables: Json): Operation {
  const t = tokens(query);
  let i = 0;
  const peek = () => t[i];
  const next = () => {
    if (i >= t.length) throw new SyntaxError('unexpected end of the document');
    return t[i++]!;
  };
  const expect = (s: string) => {
    const x = next();
    if (x !== s) throw new SyntaxError(`expected ${s}, found ${x}`);
  };
  const value = (): unknown => {
    const x = next();
    if (x === '$') return variables[next()];
    if (x === '[') {
      const list: unknown[] = [];
      while (peek() !== ']') list.push(value());
      return (next(), list);
    }
    if (x === '{') {
      const obj: Json = {};
      while (peek() !== '}') {
        const k = next();
        expect(':');
        obj[k] = value();
      }
      return (next(), obj);
    }
    if (x.startsWith('"')) return JSON.parse(x) as string;
    if (/^-?\d/.test(x)) return Number(x);
    return x === 'true' ? true : x === 'false' ? false : x === 'null' ? null : x;
  };
  const args = (): Json => {
    const out: Json = {};
    if (peek() !== '(') return out;
    next();
    while (peek() !== ')') {
      const k = next();
      expect(':');
      out[k] = value();
    }
    return (next(), out);
  };
  const directives = (): Record<string, Json> => {
    const out: Record<string, Json> = {};
    while (peek() === '@') {
      next();
      const name = next();
      out[name] = args();
    }
    return out;
  };
  const selection = (): Selection => {
    expect('{');
    const s: Selection = { fields: [], fragments: [] };
    while (peek() !== '}') {
      if (peek() === '...') {
        next();
        if (peek() === 'on') i += 2;
        directives();
        s.fragments.push(selection());
        continue;
      }
      const key = next();
      const name = peek() === ':' ? (next(), next()) : key;
      s.fields.push({ name, key, args: args(), directives: directives(), selection: peek() === '{' ? selection() : null });
    }
    return (next(), s);
  };
  const mutation = peek() === 'mutation';
  // The header (`query Name($first: Int = 10)`) runs up to the first brace outside parentheses.
  for (let depth = 0; i < t.length && (depth > 0 || peek() !== '{'); i++) depth += t[i] === '(' ? 1 : t[i] === ')' ? -1 : 0;
  return { mutation, selection: selection() };
}

/** A connection's `first` (or `last`); undefined for a field that is not a connection. */
function size(f: Field): number | undefined {
  if (!('first' in f.args) && !('last' in f.args)) return undefined;
  return Number(f.args.first ?? f.args.last) || 0;
}

/** What one node of a connection selects: `edges { node { … } }` or `nodes { … }`. */
const nodeOf = (s: Selection): Selection | null =>
  s.fields.find((f) => f.name === 'nodes')?.selection ?? s.fields.find((f) => f.name === 'edges')?.selection?.fields.find((f) => f.name === 'node')?.selection ?? null;

function selectionCost(s: Selection): number {
  return s.fields.reduce((n, f) => n + fieldCost(f), 0) + Math.max(0, ...s.fragments.map(selectionCost));
}

function fieldCost(f: Field): number {
  if (!f.selection) return 0;
  const n = size(f);
  if (n === undefined) return 1 + selectionCost(f.selection);
  const node = nodeOf(f.selection);
  return 2 + n * (node ? 1 + selectionCost(node) : 0);
}

const returnedNodes = (c: unknown): unknown[] => {
  const x = c as { nodes?: unknown[]; edges?: { node: unknown }[] };
  return x.nodes ?? x.edges?.map((e) => e.node) ?? [];
};

function returnedCost(s: Selection, data: unknown): number {
  if (data === null || typeof data !== 'object') return 0;
  const at = data as Json;
  return s.fields.reduce((n, f) => n + returnedFieldCost(f, at[f.key]), 0) + Math.max(0, ...s.fragments.map((x) => returnedCost(x, data)));
}

function returnedFieldCost(f: Field, value: unknown): number {
  if (!f.selection || value === null || value === undefined) return 0;
  if (size(f) === undefined) return 1 + (Array.isArray(value) ? Math.max(0, ...value.map((x) => returnedCost(f.selection!, x))) : returnedCost(f.selection, value));
  const node = nodeOf(f.selection);
  return 2 + returnedNodes(value).reduce<number>((n, x) => n + (node ? 1 + returnedCost(node, x) : 0), 0);
}

/** Shopify's requested cost: what the bucket must hold before the query runs, and what the single-query limit is checked against. */
export const requestedCost = (op: Operation): number => (op.mutation ? 10 : selectionCost(op.selection));

/** Shopify's actual cost of an answer's `data`: what the bucket keeps of the requested cost. */
export const actualCost = (op: Operation, data: Json | undefined): number => (op.mutation ? 10 : returnedCost(op.selection, data ?? null));
