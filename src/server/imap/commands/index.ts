// Every IMAP command the server knows, by name.
import type { CommandHandler } from '../session.ts';
import { append } from './append.ts';
import { authenticate } from './authenticate.ts';
import { capability } from './capability.ts';
import { close, unselect } from './close.ts';
import { copy, move } from './copy.ts';
import { create } from './create.ts';
import { deleteCommand } from './delete.ts';
import { enable } from './enable.ts';
import { expunge } from './expunge.ts';
import { fetch } from './fetch.ts';
import { id } from './id.ts';
import { idle } from './idle.ts';
import { list, lsub } from './list.ts';
import { login } from './login.ts';
import { logout } from './logout.ts';
import { namespace } from './namespace.ts';
import { check, noop } from './noop.ts';
import { getquota, getquotaroot } from './quota.ts';
import { rename } from './rename.ts';
import { search } from './search.ts';
import { examine, select } from './select.ts';
import { starttls } from './starttls.ts';
import { status } from './status.ts';
import { store } from './store.ts';
import { subscribe, unsubscribe } from './subscribe.ts';

export const COMMANDS: ReadonlyMap<string, CommandHandler> = new Map(
  [
    append, authenticate, capability, check, close, copy, create, deleteCommand, enable, examine, expunge, fetch,
    getquota, getquotaroot, id, idle, list, login, logout, lsub, move, namespace, noop, rename, search, select,
    starttls, status, store, subscribe, unselect, unsubscribe,
  ].map((c) => [c.name, c]),
);
