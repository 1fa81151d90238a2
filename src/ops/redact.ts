/**
 * Secrets never reach a log line or an error message: URLs lose their password before they are shown.
 */

/** `amqp://user:secret@host/vhost` → `amqp://user:***@host/vhost`; text that is not a URL is returned as is. */
export function redactUrl(text: string): string {
  try {
    const url = new URL(text);
    if (!url.password) return text;
    url.password = '***';
    return url.toString();
  } catch {
    // not a URL: still hide anything that looks like user:password@ before a host
    return text.replace(/\/\/([^:/@\s]+):[^@/\s]*@/g, '//$1:***@');
  }
}
