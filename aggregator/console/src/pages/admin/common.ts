import type { RoleName } from "../../api";

export const ROLES: RoleName[] = ["viewer", "launcher", "editor", "admin"];

/** "sales, shop" -> ["sales", "shop"]; blank -> null (every pipeline). */
export function parseScope(text: string): string[] | null {
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  return names.length ? [...new Set(names)].sort() : null;
}

export function scopeText(scope: string[] | null): string {
  return scope === null ? "all pipelines" : scope.join(", ");
}

export function when(ts: number | null): string {
  return ts === null ? "—" : new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19);
}
