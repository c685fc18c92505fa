// Renders a trace as the timeline `postern trace` prints: one line per event, times in UTC.
import type { TraceTimeline } from './api.ts';

function line(s: string): string {
  // Details come from the network (remote replies): never let them move the cursor or forge lines.
  return s.replace(/[\u0000-\u001f\u007f]/g, ' ');
}

export function formatTimeline(t: TraceTimeline): string {
  const first = t.events[0];
  const head = [`message ${t.traceId}`];
  const messageId = t.events.find((e) => e.messageId)?.messageId;
  if (messageId) head.push(`Message-ID <${line(messageId)}>`);
  if (first?.sender !== null && first?.sender !== undefined) head.push(`from <${line(first.sender)}>`);
  const out = [head.join('  ')];
  for (const e of t.events) {
    const who = e.recipient ? ` <${line(e.recipient)}>` : '';
    out.push(`  ${e.at.toISOString()}  ${e.kind.padEnd(9)}${who}  ${line(e.detail)}`);
  }
  return out.join('\n');
}
