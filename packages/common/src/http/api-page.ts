/**
 * A browsable page of a service's OpenAPI document (`GET /docs`), rendered on the server from the document itself:
 * no script, no external asset, so it works offline and under the strict Content-Security-Policy every service
 * sends. (Swagger UI and Redoc need a script bundle from a package; Swagger UI's distribution also pulls a telemetry
 * install script, which the image should not run.) Tools that want more read /openapi.json.
 */
type Json = Record<string, unknown>;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Pretty JSON, escaped, with each component reference a link to the component on the page. */
function schemaHtml(schema: unknown): string {
  return `<pre>${esc(JSON.stringify(schema, null, 2)).replace(/&quot;#\/components\/schemas\/([\w.-]+)&quot;/g, '<a href="#schema-$1">$1</a>')}</pre>`;
}

export function apiPage(doc: Json): string {
  const info = doc.info as { title: string; version: string; description?: string };
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const schemas = ((doc.components as Json | undefined)?.schemas ?? {}) as Record<string, unknown>;
  const ops: string[] = [];
  const toc: string[] = [];
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const id = esc(String(op.operationId));
      toc.push(
        `<li><a href="#${id}"><code>${method.toUpperCase()} ${esc(path)}</code></a> ${esc(String(op.summary ?? ''))}</li>`,
      );
      const params = (op.parameters ?? []) as {
        name: string;
        in: string;
        required?: boolean;
        description?: string;
        schema?: unknown;
      }[];
      const paramRows = params
        .map(
          (p) =>
            `<tr><td><code>${esc(p.name)}</code></td><td>${p.in}</td><td>${p.required ? 'yes' : 'no'}</td><td><code>${esc(JSON.stringify(p.schema ?? {}))}</code></td><td>${esc(p.description ?? '')}</td></tr>`,
        )
        .join('');
      const body = (op.requestBody as { content?: Record<string, { schema: unknown }> } | undefined)?.content;
      const responses = Object.entries(
        (op.responses ?? {}) as Record<
          string,
          {
            description: string;
            content?: Record<string, { schema?: unknown }>;
            headers?: Record<string, { description?: string }>;
          }
        >,
      )
        .map(([status, r]) => {
          const content = Object.entries(r.content ?? {});
          const headers = Object.keys(r.headers ?? {}).filter((h) => h !== 'x-request-id');
          return `<li><b>${status}</b> ${esc(r.description)}${headers.length ? ` (headers: ${headers.map((h) => `<code>${esc(h)}</code>`).join(', ')})` : ''}${content
            .map(([type, m]) => `<div><code>${esc(type)}</code>${m.schema ? schemaHtml(m.schema) : ''}</div>`)
            .join('')}</li>`;
        })
        .join('');
      ops.push(`<section id="${id}">
<h3><code>${method.toUpperCase()} ${esc(path)}</code></h3>
<p>${esc(String(op.summary ?? ''))}</p>${op.description ? `<p>${esc(String(op.description))}</p>` : ''}
${paramRows ? `<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th></th></tr>${paramRows}</table>` : ''}
${
  body
    ? Object.entries(body)
        .map(([type, m]) => `<h4>request body <code>${esc(type)}</code></h4>${schemaHtml(m.schema)}`)
        .join('')
    : ''
}
<h4>responses</h4><ul>${responses}</ul>
</section>`);
    }
  }
  const components = Object.entries(schemas).map(
    ([name, s]) => `<section id="schema-${esc(name)}"><h3>${esc(name)}</h3>${schemaHtml(s)}</section>`,
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(info.title)} API</title>
<style>body{font:14px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}pre{background:#f5f5f5;padding:.5rem;overflow:auto;max-height:24rem}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .4rem;text-align:left;vertical-align:top}section{border-top:1px solid #ccc;margin-top:1rem}</style>
</head><body>
<h1>${esc(info.title)} <small>API ${esc(info.version)}</small></h1>
<p>${esc(info.description ?? '')}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Errors are RFC 9457 problems (<a href="#schema-Problem">Problem</a>).</p>
<h2>Operations</h2><ul>${toc.join('')}</ul>
${ops.join('\n')}
<h2>Schemas</h2>
${components.join('\n')}
</body></html>
`;
}
