import { useQuery } from "@tanstack/react-query";

import { type Ability, getJson, type Me } from "./api";

export function useMe() {
  return useQuery({ queryKey: ["me"], queryFn: () => getJson<Me>("_auth/me"), staleTime: 60_000 });
}

const UNKNOWN: Ability = { allowed: false, reason: "checking your permissions…" };

/** What the server says the signed-in user may do for an API operation (its operationId). */
export function ability(me: Me | undefined, operation: string): Ability {
  if (me === undefined) return UNKNOWN;
  return me.abilities[operation] ?? { allowed: false, reason: `unknown operation ${operation}` };
}
