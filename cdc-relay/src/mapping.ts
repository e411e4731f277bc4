/**
 * The relay's view of the envelope codec (`@saga/common/messaging/envelope-codec`): an outbox row as an AMQP message. Kept as a
 * name of its own because the bench publishes the very messages the relay would.
 */
import { encodeOutboxRow, type EncodedMessage, type EncodeLimits } from '@saga/common/messaging/envelope-codec';

export type AmqpMessage = EncodedMessage;

export function toAmqpMessage(
  row: Record<string, unknown>,
  source: string,
  table: string,
  limits?: EncodeLimits,
): AmqpMessage {
  return encodeOutboxRow(row, source, table, limits);
}
