import { z } from 'zod';

/**
 * The one text schema for every id and name a client or a message can send. PostgreSQL refuses a NUL in text
 * (SQLSTATE 22021) and silently stores a lone surrogate as U+FFFD (node-postgres encodes UTF-8), which would
 * corrupt an id; bounding the length keeps every value within what indexes and AMQP short strings hold.
 */
const LONE_SURROGATE = /\p{Cs}/u;
const CONTROL = /\p{Cc}/u;
const ID_CHARS = /^[A-Za-z0-9._:@|+-]+$/;

/** Free text (a product's name): well-formed UTF-16, no control character (NUL included), 1 to `max` characters. */
export const Text = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine((s) => !LONE_SURROGATE.test(s), 'must be well-formed Unicode (a lone surrogate is not)')
    .refine((s) => !CONTROL.test(s), 'must not contain control characters (NUL included)');

/** An id: 1 to `max` ASCII letters, digits and `. _ : @ | + -` (so also no NUL, no surrogate). */
export const Identifier = (max = 64) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(ID_CHARS, 'letters, digits and . _ : @ | + - only');
