// RFC 8461 §3.2 policy: key/value lines separated by CRLF. `mx` lines are rendered by plan/ (one per MX host).
export const mtaStsPolicyTemplate = 'version: STSv1\r\nmode: {{mode}}\r\n{{mxLines}}max_age: {{maxAge}}\r\n';
