/**
 * The contract documents: what is committed is what the generator makes from the code (else `npm test` fails),
 * each document passes its specification's own validator, and the catalogue says what the handlers really consume.
 */
import { Parser } from '@asyncapi/parser';
import { validate } from '@readme/openapi-parser';
import { apiPage } from '@saga/common/http/api-page';
import { consumedBy, schemaFor } from '@saga/common/contracts/catalog';
import { inventoryHandler } from '../../services/inventory/src/messaging/handlers';
import { orderHandler } from '../../services/order/src/messaging/handlers';
import { paymentHandler } from '../../services/payment/src/messaging/handlers';
import {
  ASYNCAPI_FILE,
  asyncApiDocument,
  generatedFiles,
  OPENAPI,
  readRepoFile,
  withCatalogue,
} from '../../scripts/lib/contracts';

const asyncApiErrors = async (doc: unknown) => {
  const { diagnostics } = await new Parser().parse(JSON.stringify(doc));
  // Severity 0 is an error; lower severities are style hints.
  return diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`);
};

describe('contract documents', () => {
  it.each(Object.keys(generatedFiles()))('%s is committed as generated (npm run contracts)', (path) => {
    expect(readRepoFile(path)).toBe(generatedFiles()[path]);
  });

  it('the event catalogue in docs/contracts.md is the generated table', () => {
    const readme = readRepoFile('docs/contracts.md');
    expect(withCatalogue(readme)).toBe(readme);
  });

  it(`${ASYNCAPI_FILE} is a valid AsyncAPI 3.0 document, and the parser catches a broken one`, async () => {
    expect(await asyncApiErrors(asyncApiDocument())).toEqual([]);
    const broken = asyncApiDocument() as { operations: Record<string, { channel: unknown }> };
    broken.operations['order.send.OrderPlaced']!.channel = { $ref: '#/channels/NoSuchChannel' };
    expect((await asyncApiErrors(broken)).length).toBeGreaterThan(0);
  }, 30_000);

  it.each(Object.keys(OPENAPI))(
    'the %s OpenAPI document is valid OpenAPI 3.1, and the validator catches a broken one',
    async (service) => {
      const result = await validate(structuredClone(OPENAPI[service]) as never);
      expect('errors' in result ? result.errors : []).toEqual([]);
      expect(result.valid).toBe(true);
      // A parameter in no location OpenAPI knows breaks OpenAPI 3.1's own schema.
      const broken = structuredClone(OPENAPI[service]) as {
        paths: Record<string, Record<string, { parameters?: { in: string; required: boolean }[] }>>;
      };
      const param = Object.values(broken.paths)
        .flatMap((p) => Object.values(p))
        .flatMap((op) => op.parameters ?? [])[0]!;
      param.in = 'body';
      expect((await validate(broken as never)).valid).toBe(false);
    },
  );
});

describe('the API page', () => {
  it('lists every operation and schema, links references, and escapes what the document says', () => {
    const html = apiPage({ ...OPENAPI.order!, info: { title: '<img src=x>', version: '1', description: 'a & b' } });
    expect(html).toContain('&lt;img src=x&gt;');
    expect(html).not.toContain('<img');
    expect(html).toContain('a &amp; b');
    expect(html).toContain('<section id="placeOrder">');
    expect(html).toContain('<a href="#schema-Problem">Problem</a>');
    expect(html).toContain('<section id="schema-Order">');
  });
});

describe('event catalogue', () => {
  const pool = {} as never;
  it.each([
    ['order', orderHandler(pool, 'order.events')],
    ['inventory', inventoryHandler(pool, 'inventory.events')],
    ['payment', paymentHandler(pool, 'payment.events', 100_000)],
  ] as const)("lists as %s's consumed events exactly what its handler binds", (service, handler) => {
    expect([...handler.types].sort()).toEqual(consumedBy(service).sort());
  });

  it('reads OrderPlaced v2 as the v1 shape handlers use, and v1 unchanged', () => {
    const orderId = '00000000-0000-4000-8000-000000000001';
    const v1 = { orderId, customerId: 'c', items: [{ sku: 's', quantity: 2 }] };
    expect(schemaFor('OrderPlaced', 1).parse(v1)).toEqual(v1);
    expect(schemaFor('OrderPlaced', 2).parse({ orderId, customerId: 'c', lines: [{ sku: 's', quantity: 2 }] })).toEqual(
      v1,
    );
    expect(() => schemaFor('OrderPlaced', 2).parse(v1)).toThrow();
    expect(() => schemaFor('OrderPlaced', 3)).toThrow('unknown event OrderPlaced v3');
  });
});
