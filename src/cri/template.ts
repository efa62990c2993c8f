/**
 * The subset of Go text/template that containerd's CNI conf templates use: `{{.Field}}`,
 * `{{$var}}`, `{{range $i, $x := .Field}}…{{end}}`, `{{if $i}}…{{else}}…{{end}}`, and the `{{-`
 * / `-}}` whitespace trims. Enough to render the same template files unchanged.
 */
export interface TemplateData {
  PodCIDR: string;
  PodCIDRRanges: string[];
  Routes: string[];
}

type Value = string | string[] | number | undefined;
type Node =
  | { kind: 'text'; text: string }
  | { kind: 'value'; expr: string }
  | { kind: 'range'; indexVar: string | undefined; itemVar: string; expr: string; body: Node[] }
  | { kind: 'if'; expr: string; then: Node[]; else: Node[] };

export class TemplateError extends Error {}

interface Token {
  text?: string;
  action?: string;
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    if (open < 0) {
      out.push({ text: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    const close = src.indexOf('}}', open);
    if (close < 0) throw new TemplateError(`unclosed action at offset ${open}`);
    let inner = src.slice(open + 2, close);
    if (inner.startsWith('-')) {
      text = text.replace(/\s+$/, '');
      inner = inner.slice(1);
    }
    let next = close + 2;
    if (inner.endsWith('-')) {
      inner = inner.slice(0, -1);
      const m = /^\s*/.exec(src.slice(next));
      next += m ? m[0].length : 0;
    }
    if (text) out.push({ text });
    out.push({ action: inner.trim() });
    i = next;
  }
  return out;
}

function parse(tokens: Token[], pos: { i: number }, stopAt: string[]): { nodes: Node[]; stop: string } {
  const nodes: Node[] = [];
  while (pos.i < tokens.length) {
    const t = tokens[pos.i++];
    if (t.text !== undefined) {
      nodes.push({ kind: 'text', text: t.text });
      continue;
    }
    const a = t.action!;
    if (stopAt.includes(a)) return { nodes, stop: a };
    const range = /^range\s+(?:(\$\w+)\s*,\s*)?(\$\w+)\s*:=\s*(\S+)$/.exec(a);
    if (range) {
      const body = parse(tokens, pos, ['end']);
      nodes.push({ kind: 'range', indexVar: range[1], itemVar: range[2], expr: range[3], body: body.nodes });
      continue;
    }
    const cond = /^if\s+(\S+)$/.exec(a);
    if (cond) {
      const then = parse(tokens, pos, ['else', 'end']);
      const otherwise = then.stop === 'else' ? parse(tokens, pos, ['end']).nodes : [];
      nodes.push({ kind: 'if', expr: cond[1], then: then.nodes, else: otherwise });
      continue;
    }
    if (/^(\.\w+|\$\w+)$/.test(a)) {
      nodes.push({ kind: 'value', expr: a });
      continue;
    }
    throw new TemplateError(`unsupported template action "{{${a}}}"`);
  }
  if (stopAt.length > 0) throw new TemplateError(`missing {{${stopAt.join('}} or {{')}}}`);
  return { nodes, stop: '' };
}

function lookup(expr: string, data: TemplateData, vars: Map<string, Value>): Value {
  if (expr.startsWith('$')) {
    if (!vars.has(expr)) throw new TemplateError(`undefined variable ${expr}`);
    return vars.get(expr);
  }
  const key = expr.slice(1);
  if (!Object.hasOwn(data, key)) throw new TemplateError(`unknown field ${expr}; the template can use .PodCIDR, .PodCIDRRanges and .Routes`);
  return data[key as keyof TemplateData];
}

function truthy(v: Value): boolean {
  if (Array.isArray(v)) return v.length > 0;
  return v !== undefined && v !== '' && v !== 0;
}

function render(nodes: Node[], data: TemplateData, vars: Map<string, Value>): string {
  let out = '';
  for (const n of nodes) {
    if (n.kind === 'text') out += n.text;
    else if (n.kind === 'value') {
      const v = lookup(n.expr, data, vars);
      out += Array.isArray(v) ? `[${v.join(' ')}]` : String(v ?? '');
    } else if (n.kind === 'if') out += render(truthy(lookup(n.expr, data, vars)) ? n.then : n.else, data, vars);
    else {
      const items = lookup(n.expr, data, vars);
      if (!Array.isArray(items)) throw new TemplateError(`cannot range over ${n.expr}`);
      items.forEach((item, i) => {
        const scope = new Map(vars);
        if (n.indexVar) scope.set(n.indexVar, i);
        scope.set(n.itemVar, item);
        out += render(n.body, data, scope);
      });
    }
  }
  return out;
}

export function renderTemplate(src: string, data: TemplateData): string {
  const { nodes } = parse(tokenize(src), { i: 0 }, []);
  return render(nodes, data, new Map());
}

/** The data containerd gives the template: the CIDRs, and a default route per family present. */
export function templateData(cidrs: string[]): TemplateData {
  const routes: string[] = [];
  if (cidrs.some((c) => !c.includes(':'))) routes.push('0.0.0.0/0');
  if (cidrs.some((c) => c.includes(':'))) routes.push('::/0');
  return { PodCIDR: cidrs[0] ?? '', PodCIDRRanges: cidrs, Routes: routes };
}
