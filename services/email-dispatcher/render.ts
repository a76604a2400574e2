/** `{{field}}` merge tags, as in the template; names are letters, digits and _. */
const TAG = /\{\{\s*([A-Za-z0-9_]{1,50})\s*\}\}/g;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

/** Replaces merge tags with values (unknown tags become empty); html escapes them. */
export function render(template: string, values: Record<string, string>, html = false): string {
  return template.replace(TAG, (_, name: string) => {
    const v = values[name] ?? '';
    return html ? escapeHtml(v) : v;
  });
}

/** Subjects are one header line: merged values lose their line breaks. */
export const renderSubject = (template: string, values: Record<string, string>) => render(template, values).replace(/[\r\n]+/g, ' ');

/**
 * SendGrid substitutes the same value into text and html, so html gets its own tags:
 * `{{name}}` in html becomes `{{name|html}}`, whose value is escaped.
 */
export const htmlTags = (template: string) => template.replace(TAG, (_, name: string) => `{{${name}|html}}`);

/**
 * SendGrid substitutes exact strings: subject and text carry each tag as `{{name}}`, the one
 * spelling the substitutions use (`{{ name }}` would reach the recipient as written).
 */
export const plainTags = (template: string) => template.replace(TAG, (_, name: string) => `{{${name}}}`);

/**
 * The substitution map of one recipient: each tag the template uses, in the spelling its place
 * needs (`plain`: subject and text; `html`), a tag it has no value for as '' (as `render` does
 * over SMTP), so SendGrid never shows a tag as written. Only what is used: SendGrid limits the
 * substitutions of a personalization (providers/sendgrid.ts).
 */
export function substitutions(values: Record<string, string>, used: { plain: Iterable<string>; html: Iterable<string> }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of used.plain) out[`{{${k}}}`] = (values[k] ?? '').replace(/[\r\n]+/g, ' ');
  for (const k of used.html) out[`{{${k}|html}}`] = escapeHtml(values[k] ?? '');
  return out;
}

/** Tag names a template uses, so a batch sends only the substitutions it needs. */
export function tagsOf(...templates: (string | undefined)[]): Set<string> {
  const out = new Set<string>();
  for (const t of templates) for (const m of (t ?? '').matchAll(TAG)) out.add(m[1]!);
  return out;
}
