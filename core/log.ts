import pino, { type Logger } from 'pino';

/** JSON logs to stderr; pretty when stderr is a terminal. */
export function createLogger(level = 'info'): Logger {
  if (process.stderr.isTTY) {
    return pino({ level, transport: { target: 'pino-pretty', options: { destination: 2, colorize: true } } });
  }
  return pino({ level }, pino.destination({ dest: 2, sync: false }));
}
