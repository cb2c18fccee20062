import { QubesError } from '@qubes-bus/contracts';
import { DomainFlavor } from './domain-xml';
import type { Hypervisor } from './port';

/**
 * Offline mode (installation, recovery, or no LIBVIRT_URI): qubes.xml can be edited, but every
 * call that needs a hypervisor fails with VMM_OFFLINE, saying why.
 */
export class OfflineHypervisor implements Hypervisor {
  readonly uri = null;

  constructor(private readonly reason: string) {}

  private refuse(..._args: unknown[]): Promise<never> {
    return Promise.reject(new QubesError('VMM_OFFLINE', `no hypervisor: ${this.reason}`));
  }

  /** Nothing is defined offline; a VM created now gets its domain at its first start online. */
  domainFlavor = (): Promise<DomainFlavor> => Promise.resolve(DomainFlavor.Qemu);
  define = (..._args: unknown[]): Promise<never> => this.refuse();
  undefine = (..._args: unknown[]): Promise<never> => this.refuse();
  lookup = (..._args: unknown[]): Promise<never> => this.refuse();
  list = (..._args: unknown[]): Promise<never> => this.refuse();
  start = (..._args: unknown[]): Promise<never> => this.refuse();
  shutdown = (..._args: unknown[]): Promise<never> => this.refuse();
  destroy = (..._args: unknown[]): Promise<never> => this.refuse();
  pause = (..._args: unknown[]): Promise<never> => this.refuse();
  resume = (..._args: unknown[]): Promise<never> => this.refuse();
  attachDevice = (..._args: unknown[]): Promise<never> => this.refuse();
  detachDevice = (..._args: unknown[]): Promise<never> => this.refuse();
  resizeDisk = (..._args: unknown[]): Promise<never> => this.refuse();
  xml = (..._args: unknown[]): Promise<never> => this.refuse();
  hostInfo = (..._args: unknown[]): Promise<never> => this.refuse();

  watch(): { stop(): Promise<void> } {
    return { stop: async () => undefined };
  }

  async close(): Promise<void> {}
}
