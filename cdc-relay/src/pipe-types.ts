/** The pipe's ports and errors, apart so that the pipe's parts can share them without a cycle. */
import type { Options } from 'amqplib';

/**
 * How a publish ended: stored ('confirmed'); not stored by the broker's decision ('refused': a nack, a return, the
 * channel closed by the broker for it); or unknown because the session's connection went away ('abandoned': a
 * lost connection, a session that ended or gave up draining), which is no refusal and counts as none.
 */
export type Settled = 'confirmed' | 'refused' | 'abandoned';

/** The broker's reason: the reply code and text of the channel it closed, or what else it did ('nacked'). */
export type Refusal = { code?: number; text: string };

/** The broker side, as the pipe needs it. */
export type PublisherPort = {
  /**
   * Send one message. `settled` is called exactly once, with the broker's reason when it refused the message.
   * Throws synchronously, having sent nothing, when the client cannot encode the message.
   */
  publish: (
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish,
    settled: (s: Settled, why?: Refusal) => void,
  ) => void;
  /** false while the client's write buffer is full. */
  writable: () => boolean;
};

export class SessionError extends Error {
  override name = 'SessionError';
}
