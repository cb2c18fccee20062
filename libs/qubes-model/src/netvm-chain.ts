import { propertyDef, type PropertyScope } from './property-table';

/** The VM's netvm, or null when it has none or its class cannot have one. */
export function netvmOf(scope: PropertyScope, vm: string): string | null {
  return propertyDef(scope.classOf(vm), 'netvm') === undefined ? null : (scope.value(vm, 'netvm') as string | null);
}

/** The loop traffic from `start` would go round (`a -> b -> a` as [a, b, a]), or null if none. */
export function netvmLoop(scope: PropertyScope, start: string): string[] | null {
  const path: string[] = [];
  for (let hop: string | null = start; hop !== null; hop = netvmOf(scope, hop)) {
    if (path.includes(hop)) return [...path.slice(path.indexOf(hop)), hop];
    path.push(hop);
  }
  return null;
}
