// CSV as RFC 4180 writes it: comma-separated, CRLF line ends, a field quoted when it holds a
// comma, a double quote or a line break, its quotes doubled. Text stays UTF-8 as it is.

const NEEDS_QUOTES = /[",\r\n]/;

/** One field: null and undefined are empty, booleans true/false, objects their JSON. */
export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export const csvLine = (values: readonly unknown[]): string => `${values.map(csvField).join(',')}\r\n`;
