import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inboundRules, outboundRules } from '../../src/plan/firewall.ts';

const summary = (plaintextPorts: boolean) => inboundRules({ adminCidrs: ['203.0.113.7/32', '2001:db8::/48'], plaintextPorts })
  .map((r) => `${r.protocol} ${r.ports || '-'} from ${r.sources.join(',')}`);

test('mail ports are open to all, SSH only to the admin networks', () => {
  assert.deepEqual(summary(false), [
    'icmp - from 0.0.0.0/0,::/0',
    'tcp 22 from 203.0.113.7/32,2001:db8::/48',
    'tcp 25 from 0.0.0.0/0,::/0',
    'tcp 80 from 0.0.0.0/0,::/0',
    'tcp 443 from 0.0.0.0/0,::/0',
    'tcp 465 from 0.0.0.0/0,::/0',
    'tcp 587 from 0.0.0.0/0,::/0',
    'tcp 993 from 0.0.0.0/0,::/0',
    'tcp 995 from 0.0.0.0/0,::/0',
  ]);
});

test('plaintext IMAP and POP3 ports open only when the stack offers them', () => {
  const on = summary(true);
  assert.ok(on.includes('tcp 110 from 0.0.0.0/0,::/0'));
  assert.ok(on.includes('tcp 143 from 0.0.0.0/0,::/0'));
  assert.equal(on.length, summary(false).length + 2);
  assert.deepEqual(outboundRules().map((r) => r.protocol), ['tcp', 'udp', 'icmp']);
});
