/**
 * A caller's mistake that maps to a 4xx answer. Business "no" that another service must hear is an event instead.
 * This module imports nothing, so a domain module can throw it without loading any I/O library.
 */
export class DomainError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 404 | 409 | 422,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}
export const notFound = (what: string, id: string) => new DomainError(`${what} ${id} not found`, 404, 'not_found');
export const conflict = (message: string) => new DomainError(message, 409, 'conflict');
