# Drives Postern's POP3 server with Python's poplib; prints one JSON object with what it observed.
# usage: pop3_client.py SCENARIO HOST PLAIN_PORT TLS_PORT CAFILE USER PASSWORD
import base64, json, poplib, socket, ssl, sys

scenario, host, plain_port, tls_port, cafile, user, password = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False  # the certificate names localhost; we connect to 127.0.0.1
out = {}

def err(fn):
    try:
        return 'OK ' + str(fn())
    except poplib.error_proto as e:
        return e.args[0].decode('utf-8', 'replace')

def login_tls():
    p = poplib.POP3_SSL(host, int(tls_port), context=ctx, timeout=20)
    p.user(user)
    p.pass_(password)
    return p

if scenario == 'stls':
    p = poplib.POP3(host, int(plain_port), timeout=20)
    out['greeting'] = p.getwelcome().decode()
    out['capa_plain'] = sorted(p.capa().keys())
    out['user_before_tls'] = err(lambda: p.user(user))
    out['auth_before_tls'] = err(lambda: p._shortcmd('AUTH PLAIN ' + base64.b64encode(f'\0{user}\0{password}'.encode()).decode()))
    p.stls(context=ctx)
    out['capa_tls'] = sorted(p.capa().keys())
    p.user(user)
    out['pass'] = p.pass_(password).decode()
    out['stat'] = list(p.stat())
    out['list'] = [l.decode() for l in p.list()[1]]
    out['uidl'] = [l.decode() for l in p.uidl()[1]]
    out['top'] = [l.decode('utf-8', 'replace') for l in p.top(1, 1)[1]]
    out['retr'] = [l.decode('utf-8', 'replace') for l in p.retr(2)[1]]
    out['quit'] = p.quit().decode()

elif scenario == 'sasl':
    p = poplib.POP3_SSL(host, int(tls_port), context=ctx, timeout=20)
    out['bad'] = err(lambda: p._shortcmd('AUTH PLAIN ' + base64.b64encode(f'\0{user}\0wrong'.encode()).decode()))
    out['good'] = err(lambda: p._shortcmd('AUTH PLAIN ' + base64.b64encode(f'\0{user}\0{password}'.encode()).decode()))
    out['stat'] = list(p.stat())
    out['quit'] = p.quit().decode()

elif scenario == 'sasl-continuation':
    p = poplib.POP3_SSL(host, int(tls_port), context=ctx, timeout=20)
    p._putcmd('AUTH PLAIN')
    out['challenge'] = p._getline()[0].decode()
    out['good'] = err(lambda: p._shortcmd(base64.b64encode(f'{user}\0{user}\0{password}'.encode()).decode()))
    out['quit'] = p.quit().decode()

elif scenario == 'dele-quit':
    p = login_tls()
    out['dele'] = p.dele(1).decode()
    out['stat_after_dele'] = list(p.stat())
    out['retr_deleted'] = err(lambda: p.retr(1))
    out['quit'] = p.quit().decode()
    p = login_tls()
    out['stat_next_session'] = list(p.stat())
    p.quit()

elif scenario == 'dele-drop':
    p = login_tls()
    out['dele'] = p.dele(1).decode()
    p.sock.close()  # connection dropped without QUIT: nothing may be deleted
    p = poplib.POP3_SSL(host, int(tls_port), context=ctx, timeout=20)
    p.user(user)
    # The server notices the drop asynchronously; retry the lock briefly.
    import time
    for _ in range(50):
        try:
            p.pass_(password)
            break
        except poplib.error_proto as e:
            if b'IN-USE' not in e.args[0]:
                raise
            time.sleep(0.1)
            p.user(user)
    out['stat_next_session'] = list(p.stat())
    p.quit()

elif scenario == 'in-use':
    a = login_tls()
    b = poplib.POP3_SSL(host, int(tls_port), context=ctx, timeout=20)
    b.user(user)
    out['second'] = err(lambda: b.pass_(password))
    out['first_still_works'] = list(a.stat())
    a.quit()
    b.user(user)
    out['after_release'] = err(lambda: b.pass_(password))
    b.quit()

elif scenario == 'bad-commands':
    p = login_tls()
    out['unknown'] = err(lambda: p._shortcmd('FROB'))
    out['retr_word'] = err(lambda: p._shortcmd('RETR abc'))
    out['retr_zero'] = err(lambda: p._shortcmd('RETR 0'))
    out['retr_missing'] = err(lambda: p._shortcmd('RETR 999'))
    out['top_no_lines'] = err(lambda: p._shortcmd('TOP 1'))
    out['user_again'] = err(lambda: p._shortcmd('USER x'))
    # A line far longer than the limit, sent raw.
    p.sock.sendall(b'NOOP ' + b'x' * 5000 + b'\r\n')
    out['long_line'] = p._getline()[0].decode()
    out['nul'] = err(lambda: p._shortcmd('NO\x00OP'))
    out['noop_after'] = p.noop().decode()
    out['stat_after'] = list(p.stat())
    out['quit'] = p.quit().decode()

elif scenario == 'pipelining':
    p = login_tls()
    n = 20000  # ~120 KB of commands in one burst: more than the server buffers before pausing the socket
    p.sock.sendall(b'STAT\r\n' * n)
    answers = [p._getline()[0] for _ in range(n)]
    out['answered'] = len(answers)
    out['all_ok'] = all(a.startswith(b'+OK 2 ') for a in answers)
    out['quit'] = p.quit().decode()

elif scenario == 'dot-stuffing':
    p = login_tls()
    out['retr'] = [l.decode() for l in p.retr(1)[1]]
    p.quit()

print(json.dumps(out))
