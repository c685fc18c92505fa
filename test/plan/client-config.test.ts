// MTA-STS policy (parsed by mailauth in strict RFC 8461 mode) and the client autoconfiguration documents
// (well-formed XML with every substituted value escaped).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { parsePolicy } from 'mailauth/lib/mta-sts.js';
import {
  mtaStsPolicyId, nameBasedUuid, renderAutoconfigXml, renderAutodiscoverXml, renderMobileconfig, renderMtaStsPolicy,
} from '../../src/plan/client-config.ts';
import { renderTemplate, xmlEscape } from '../../src/plan/template.ts';
import { ensureDebianPackages } from '../support/debian.ts';

ensureDebianPackages(['python3']);

const stack = { domain: 'example.com', hostname: 'mail.example.com' };

test('the MTA-STS policy parses under RFC 8461 strict syntax and its id follows its text', () => {
  const text = renderMtaStsPolicy({ hostname: 'mail.example.com', mtaSts: { mode: 'enforce', maxAge: 604800 } });
  assert.equal(text, 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n');
  assert.deepEqual(parsePolicy(text, { strict: true }), { mode: 'enforce', version: 'STSv1', mx: ['mail.example.com'], maxAge: 604800 });
  const testing = renderMtaStsPolicy({ hostname: 'mail.example.com', mtaSts: { mode: 'testing', maxAge: 604800 } });
  assert.match(mtaStsPolicyId(text), /^[0-9a-f]{20}$/);
  assert.equal(mtaStsPolicyId(text), mtaStsPolicyId(`${text}`), 'same text, same id');
  assert.notEqual(mtaStsPolicyId(text), mtaStsPolicyId(testing), 'a changed policy gets a new id, so senders refetch it');
});

const parser = new XMLParser({ ignoreAttributes: false, processEntities: true, parseTagValue: false });

test('Thunderbird autoconfig names the host and implicit-TLS ports', () => {
  const xml = renderAutoconfigXml(stack);
  assert.equal(XMLValidator.validate(xml), true);
  const doc = parser.parse(xml);
  const provider = doc.clientConfig.emailProvider;
  assert.equal(provider['@_id'], 'example.com');
  assert.deepEqual(provider.incomingServer.map((s: Record<string, string>) => [s['@_type'], s.hostname, s.port, s.socketType]),
    [['imap', 'mail.example.com', '993', 'SSL'], ['pop3', 'mail.example.com', '995', 'SSL']]);
  assert.deepEqual([provider.outgoingServer.hostname, provider.outgoingServer.port, provider.outgoingServer.socketType], ['mail.example.com', '465', 'SSL']);
  const dev = parser.parse(renderAutoconfigXml(stack, { imaps: 10993, pop3s: 10995, submissions: 10465 }));
  assert.equal(dev.clientConfig.emailProvider.incomingServer[0].port, '10993');
});

test('Outlook autodiscover answers with IMAP and SMTP settings, and the requested login name escaped', () => {
  const xml = renderAutodiscoverXml(stack, undefined, 'o\'brien&co@example.com');
  assert.equal(XMLValidator.validate(xml), true);
  const account = parser.parse(xml).Autodiscover.Response.Account;
  assert.deepEqual(account.Protocol.map((p: Record<string, string>) => [p.Type, p.Server, p.Port, p.SSL, p.LoginName]), [
    ['IMAP', 'mail.example.com', '993', 'on', 'o\'brien&co@example.com'],
    ['SMTP', 'mail.example.com', '465', 'on', 'o\'brien&co@example.com'],
  ]);
  assert.match(xml, /<LoginName>o&apos;brien&amp;co@example\.com<\/LoginName>/);
});

test('the Apple profile is a well-formed plist with stable UUIDs', () => {
  const xml = renderMobileconfig(stack);
  assert.equal(XMLValidator.validate(xml), true);
  assert.equal(xml, renderMobileconfig(stack), 'rendering is deterministic');
  const plist = parser.parse(xml).plist.dict;
  const keys: string[] = plist.key;
  assert.equal(plist.string[keys.filter((k) => !['PayloadContent', 'PayloadRemovalDisallowed', 'PayloadVersion'].includes(k)).indexOf('PayloadType')], 'Configuration');
  const account = plist.array.dict;
  assert.ok(account.string.includes('com.apple.mail.managed'));
  assert.ok(account.string.includes('mail.example.com'));
  assert.deepEqual(account.integer, ['993', '465', '1']);
  // Python's plistlib reads Apple's plist format strictly (typed values, dict key/value pairing).
  const py = spawnSync('python3', ['-c', 'import plistlib, sys, json; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))'], { input: xml, encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const profile = JSON.parse(py.stdout);
  assert.equal(profile.PayloadType, 'Configuration');
  assert.equal(profile.PayloadRemovalDisallowed, false);
  assert.deepEqual(profile.PayloadContent.map((p: Record<string, unknown>) => [p.PayloadType, p.EmailAccountType, p.IncomingMailServerHostName,
    p.IncomingMailServerPortNumber, p.IncomingMailServerUseSSL, p.OutgoingMailServerPortNumber, p.OutgoingMailServerUseSSL]),
  [['com.apple.mail.managed', 'EmailTypeIMAP', 'mail.example.com', 993, true, 465, true]]);
  const uuids = xml.match(/[0-9A-F]{8}-[0-9A-F]{4}-8[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}/g)!;
  assert.equal(new Set(uuids).size, 2);
  assert.notEqual(nameBasedUuid('a'), nameBasedUuid('b'));
  assert.notEqual(renderMobileconfig({ domain: 'example.org', hostname: 'mail.example.org' }).match(/PayloadUUID<\/key>\s*<string>([^<]+)/)![1], uuids[0]);
});

test('every substituted value is XML-escaped, so hostile text cannot add elements', () => {
  const hostile = { domain: 'x"><evil/>&', hostname: '<script>&amp;' };
  for (const xml of [renderAutoconfigXml(hostile), renderAutodiscoverXml(hostile, undefined, '</LoginName><x/>'), renderMobileconfig(hostile)]) {
    assert.equal(XMLValidator.validate(xml), true);
    assert.doesNotMatch(xml, /<evil\/>|<script>|<x\/>/);
  }
  assert.equal(parser.parse(renderAutoconfigXml(hostile)).clientConfig.emailProvider.incomingServer[0].hostname, '<script>&amp;');
  assert.equal(xmlEscape('a\u0000b\u0007c'), 'abc', 'characters XML cannot carry are dropped');
});

test('templates refuse missing and unused values', () => {
  assert.throws(() => renderTemplate('{{a}} {{b}}', { a: 1 }, 'text'), { message: 'template placeholder {{b}} has no value' });
  assert.throws(() => renderTemplate('{{a}}', { a: 1, c: 2 }, 'text'), { message: 'template has no placeholder for: c' });
});
