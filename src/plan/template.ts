// Fills `{{name}}` placeholders in the template strings under templates/. Every value is escaped for the
// template's format; a placeholder without a value, or a value without a placeholder, is a programming error.

export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!)
    // Characters XML 1.0 cannot carry at all are dropped rather than producing an unreadable document.
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '');
}

export function renderTemplate(template: string, values: Readonly<Record<string, string | number>>, format: 'xml' | 'text'): string {
  const used = new Set<string>();
  const out = template.replace(/\{\{([A-Za-z0-9]+)\}\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`template placeholder {{${name}}} has no value`);
    used.add(name);
    return format === 'xml' ? xmlEscape(String(v)) : String(v);
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length) throw new Error(`template has no placeholder for: ${unused.join(', ')}`);
  return out;
}
