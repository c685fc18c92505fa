// Apple configuration profile with one IMAP account (com.apple.mail.managed). No address or user name: the
// device asks for them on install. Unsigned; the UUIDs are derived from the domain so re-renders are identical.
export const mobileconfigTemplate = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key>
      <string>{{displayName}}</string>
      <key>EmailAccountType</key>
      <string>EmailTypeIMAP</string>
      <key>IncomingMailServerAuthentication</key>
      <string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key>
      <string>{{hostname}}</string>
      <key>IncomingMailServerPortNumber</key>
      <integer>{{imapsPort}}</integer>
      <key>IncomingMailServerUseSSL</key>
      <true/>
      <key>OutgoingMailServerAuthentication</key>
      <string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key>
      <string>{{hostname}}</string>
      <key>OutgoingMailServerPortNumber</key>
      <integer>{{submissionsPort}}</integer>
      <key>OutgoingMailServerUseSSL</key>
      <true/>
      <key>OutgoingPasswordSameAsIncomingPassword</key>
      <true/>
      <key>PayloadDescription</key>
      <string>Mail account for {{domain}}</string>
      <key>PayloadDisplayName</key>
      <string>{{displayName}}</string>
      <key>PayloadIdentifier</key>
      <string>{{identifier}}.account</string>
      <key>PayloadType</key>
      <string>com.apple.mail.managed</string>
      <key>PayloadUUID</key>
      <string>{{accountUuid}}</string>
      <key>PayloadVersion</key>
      <integer>1</integer>
    </dict>
  </array>
  <key>PayloadDescription</key>
  <string>Sets up mail for {{domain}} on {{hostname}}.</string>
  <key>PayloadDisplayName</key>
  <string>{{displayName}}</string>
  <key>PayloadIdentifier</key>
  <string>{{identifier}}</string>
  <key>PayloadRemovalDisallowed</key>
  <false/>
  <key>PayloadType</key>
  <string>Configuration</string>
  <key>PayloadUUID</key>
  <string>{{profileUuid}}</string>
  <key>PayloadVersion</key>
  <integer>1</integer>
</dict>
</plist>
`;
