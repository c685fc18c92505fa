// Thunderbird autoconfig (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
// Implicit TLS only (RFC 8314); %EMAILADDRESS% is Thunderbird's own placeholder, left for the client to fill.
export const autoconfigXmlTemplate = `<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{{domain}}">
    <domain>{{domain}}</domain>
    <displayName>{{displayName}}</displayName>
    <displayShortName>{{domain}}</displayShortName>
    <incomingServer type="imap">
      <hostname>{{hostname}}</hostname>
      <port>{{imapsPort}}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>{{hostname}}</hostname>
      <port>{{pop3sPort}}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{{hostname}}</hostname>
      <port>{{submissionsPort}}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
`;
