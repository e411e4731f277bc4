/**
 * Real answers against the OpenAPI document each service serves: every HTTP exchange a test makes through `http()`
 * is recorded, and `expectConformance()` checks each one against the `/openapi.json` of the service that answered:
 * the status is documented for that operation, the content type is the documented one, and the body validates
 * against the documented schema (JSON Schema 2020-12, as OpenAPI 3.1 uses). A path no operation matches must be the
 * generic unknown-route answer: 404 with a problem body.
 */
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { ValidateFunction } from 'ajv';

export type Exchange = { method: string; url: string; status: number; contentType: string; body: unknown };

/** Every exchange `http()` made in this test file, in order. */
export const recorded: Exchange[] = [];

type Doc = {
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>
  >;
  components: { schemas: Record<string, unknown> };
};

/** The problems of `exchanges` against their services' documents; empty when all conform. */
export async function conformanceProblems(exchanges: readonly Exchange[]): Promise<string[]> {
  const docs = new Map<string, Doc>();
  const validators = new Map<string, ValidateFunction>();
  const ajv = new Ajv2020({ strict: false, allErrors: false });
  addFormats(ajv);
  const problems: string[] = [];
  for (const x of exchanges) {
    const u = new URL(x.url);
    let doc = docs.get(u.origin);
    if (!doc) {
      doc = (await (await fetch(`${u.origin}/openapi.json`)).json()) as Doc;
      docs.set(u.origin, doc);
      // Component refs resolve against a schema of their own per service.
      ajv.addSchema({ $id: schemaId(u), $defs: refsTo(doc.components.schemas, schemaId(u)) });
    }
    const what = `${x.method} ${u.pathname} -> ${x.status}`;
    const template = Object.keys(doc.paths).find((p) => pathRegex(p).test(u.pathname));
    const op = template ? doc.paths[template]![x.method.toLowerCase()] : undefined;
    if (!op) {
      const isProblem = x.contentType.startsWith('application/problem+json');
      if (x.status !== 404 || !isProblem)
        problems.push(`${what}: no documented operation (and not the unknown-route 404 problem)`);
      continue;
    }
    const response = op.responses[String(x.status)];
    if (!response) {
      problems.push(`${what}: status not documented for ${x.method} ${template}`);
      continue;
    }
    if (!response.content) continue;
    const [mediaType, media] = Object.entries(response.content)[0]!;
    if (!x.contentType.startsWith(mediaType)) {
      problems.push(`${what}: content type ${x.contentType}, documented ${mediaType}`);
      continue;
    }
    const key = `${u.origin} ${x.method} ${template} ${x.status}`;
    let validate = validators.get(key);
    if (!validate) {
      validate = ajv.compile(refsTo(media.schema, schemaId(u)) as object);
      validators.set(key, validate);
    }
    if (!validate(x.body))
      problems.push(
        `${what}: body does not match the schema: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(x.body).slice(0, 300)}`,
      );
  }
  return problems;
}

/** `/orders/{orderId}` -> a regex matching one path segment per parameter. */
const pathRegex = (template: string) =>
  new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`);

/** The id under which a service's component schemas are registered (one per port: one per service process). */
const schemaId = (u: URL) => `https://openapi.test/${u.port}.json`;

/** `#/components/schemas/X` -> `<id>#/$defs/X`. */
function refsTo(v: unknown, id: string): unknown {
  return JSON.parse(JSON.stringify(v).replaceAll('"#/components/schemas/', `"${id}#/$defs/`));
}
