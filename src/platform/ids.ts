// ULIDs: sortable by creation time, safe in URLs, and they say nothing about the person.
import { monotonicFactory } from 'ulid';

export type IdGenerator = () => string;

export function createIdGenerator(): IdGenerator {
  const next = monotonicFactory();
  return () => next();
}
