// MailHost: the DigitalOcean side of a Postern domain. One droplet named by the mail hostname (DigitalOcean
// makes that name its PTR for IPv4 and the first IPv6), its firewall, a volume for mail data and a project.
// Mail leaves from the droplet's own addresses: a reserved IP would have no PTR.
import * as pulumi from '@pulumi/pulumi';
import * as digitalocean from '@pulumi/digitalocean';
import type { StackConfig } from '../../plan/stack-config.ts';
import { inboundRules, outboundRules } from '../../plan/firewall.ts';
import { renderCloudInit } from '../host-templates.ts';
import { SshKeyPair } from '../providers/ssh-keys.ts';

export const DROPLET_IMAGE = 'ubuntu-24-04-x64';
/** GiB; grow it in the DigitalOcean console (or here) when mail needs more. */
export const MAIL_VOLUME_GIB = 10;

export interface MailHostArgs {
  stack: StackConfig;
  /** The public key Pulumi deploys with (its private half is in state, secret). */
  deployPublicKey: pulumi.Input<string>;
  paths: { root: string; stateDir: string };
  serviceUser: string;
}

/** DigitalOcean names: lower-case letters, digits and hyphens. */
export function resourceSlug(hostname: string): string {
  return hostname.replace(/[^a-z0-9-]/g, '-').slice(0, 60);
}

export class MailHost extends pulumi.ComponentResource {
  readonly droplet: digitalocean.Droplet;
  readonly firewall: digitalocean.Firewall;
  readonly volume: digitalocean.Volume;
  readonly hostKey: SshKeyPair;
  readonly ipv4: pulumi.Output<string>;
  readonly ipv6: pulumi.Output<string>;
  readonly hostKeyFingerprint: pulumi.Output<string>;

  constructor(name: string, args: MailHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super('postern:infra:MailHost', name, {}, opts);
    const { stack } = args;
    const parent = { parent: this };
    const slug = resourceSlug(stack.hostname);
    // Data that must survive a mistaken `destroy` or replacement, unless the stack is a throwaway.
    const keep = stack.ephemeral ? {} : { protect: true, retainOnDelete: true };

    this.hostKey = new SshKeyPair(`${name}-host-key`, { comment: `postern-host@${stack.hostname}` }, parent);
    const adminKey = new digitalocean.SshKey(`${name}-admin-key`, { name: `${slug}-admin`, publicKey: stack.sshPublicKey }, parent);
    const deployKey = new digitalocean.SshKey(`${name}-deploy-key`, { name: `${slug}-deploy`, publicKey: args.deployPublicKey }, parent);

    this.volume = new digitalocean.Volume(`${name}-mail`, {
      name: `${slug}-mail`, region: stack.region, size: MAIL_VOLUME_GIB, initialFilesystemType: 'ext4',
      description: `Postern mail data for ${stack.domain}`,
    }, { ...parent, ...keep });

    // user_data holds only what never changes after creation (host key, user, paths, volume name): changing
    // it would replace the droplet. It is a secret because it carries the host's private key.
    const userData = pulumi.secret(pulumi.all([this.hostKey.privateKey, this.hostKey.publicKey]).apply(([priv, pub]) => renderCloudInit({
      hostPrivateKey: priv, hostPublicKey: pub, user: args.serviceUser, stateDir: args.paths.stateDir, root: args.paths.root,
      volumeName: `${slug}-mail`,
    })));

    this.droplet = new digitalocean.Droplet(`${name}-droplet`, {
      name: stack.hostname, image: DROPLET_IMAGE, region: stack.region, size: stack.size,
      ipv6: stack.ipv6, monitoring: stack.monitoring, backups: stack.backups,
      sshKeys: [adminKey.fingerprint, deployKey.fingerprint], userData, tags: ['postern'],
    }, {
      ...parent,
      // New login keys reach the host with the next deploy (authorized_keys), not by rebuilding the droplet.
      ignoreChanges: ['sshKeys'],
    });
    const dropletId = this.droplet.id.apply((id) => Number(id));

    new digitalocean.VolumeAttachment(`${name}-mail-attachment`, { dropletId, volumeId: this.volume.id }, parent);

    const toDo = (r: { protocol: string; ports: string }) => ({ protocol: r.protocol, ...(r.protocol === 'icmp' ? {} : { portRange: r.ports }) });
    this.firewall = new digitalocean.Firewall(`${name}-firewall`, {
      name: `${slug}-mail`,
      dropletIds: [dropletId],
      inboundRules: inboundRules(stack).map((r) => ({ ...toDo(r), sourceAddresses: r.sources })),
      outboundRules: outboundRules().map((r) => ({ ...toDo(r), destinationAddresses: r.destinations })),
    }, parent);

    new digitalocean.Project(`${name}-project`, {
      name: `postern ${stack.domain}`,
      description: `Postern mail server for ${stack.domain}`,
      // One of DigitalOcean's fixed purposes: any other text is stored as "Other: …" and would show a diff on every up.
      purpose: 'Service or API',
      environment: stack.ephemeral ? 'Development' : 'Production',
      resources: [this.droplet.dropletUrn, this.volume.volumeUrn],
    }, parent);

    this.ipv4 = this.droplet.ipv4Address;
    this.ipv6 = this.droplet.ipv6Address;
    this.hostKeyFingerprint = this.hostKey.fingerprint;
    this.registerOutputs({ ipv4: this.ipv4, ipv6: this.ipv6, hostKeyFingerprint: this.hostKeyFingerprint });
  }
}
