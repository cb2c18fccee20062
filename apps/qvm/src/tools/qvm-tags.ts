import { Command } from 'commander';
import { AdminVmTag, isQubesError, QubesError } from '@qubes-bus/contracts';
import { UsageError } from '../errors';
import type { ToolContext } from '../tool';

/** The commands of qvm-tags and their aliases (qubesadmin/tools/qvm_tags.py). */
const COMMANDS: Readonly<Record<string, 'list' | 'add' | 'del'>> = {
  list: 'list', ls: 'list', l: 'list',
  add: 'add', a: 'add', set: 'add',
  del: 'del', d: 'del', unset: 'del', u: 'del',
};

/** qvm-tags: list, query, add or remove a qube's tags. */
export function qvmTags(ctx: ToolContext): Command {
  return new Command('qvm-tags')
    .description("Manage a qube's tags")
    .usage('[options] <vmname> [list [TAG] | add TAG... | del TAG...]')
    .argument('<vmname>', 'the qube')
    .argument('[command]', 'list (ls, l; the default), add (a, set) or del (d, unset, u)')
    .argument('[tags...]', 'the tags')
    .action(async (vm: string, untrustedCommand: string | undefined, tags: string[]) => {
      const command = COMMANDS[untrustedCommand ?? 'list'];
      if (command === undefined) throw new UsageError(`no such command: ${JSON.stringify(untrustedCommand)}; use list, add or del`);
      if (command === 'list' && tags.length > 1) throw new UsageError('list takes at most one tag');
      if (command !== 'list' && tags.length === 0) throw new UsageError(`${command} needs at least one tag`);
      const api = await ctx.api();
      if (command === 'list') {
        const [tag] = tags;
        if (tag === undefined) {
          const list = (await api.request(AdminVmTag.List, {}, { dest: vm })).tags.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          ctx.stdout.write(list.map((t) => `${t}\n`).join(''));
        } else if ((await api.request(AdminVmTag.Get, { arg: tag }, { dest: vm })).present) {
          ctx.stdout.write(`${tag}\n`);
        } else {
          throw new QubesError('TAG_NOT_FOUND', `${vm} has no tag ${tag}`);
        }
        return;
      }
      for (const tag of tags) {
        if (command === 'add') {
          await api.request(AdminVmTag.Set, { arg: tag }, { dest: vm });
        } else {
          // Removing a tag the qube does not have is done already (as in Qubes).
          await api.request(AdminVmTag.Remove, { arg: tag }, { dest: vm }).catch((err: unknown) => {
            if (!isQubesError(err, 'TAG_NOT_FOUND')) throw err;
          });
        }
      }
    });
}
