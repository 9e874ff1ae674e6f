// "Mes dernières recherches" (seed 002, 2.3): the last patients searched, kept in this
// browser's localStorage so that the list is there offline too. Names only, no clinical data.
const KEY = "consilium.recent.v1";
const MAX = 8;

export function recentSearches() {
  try {
    const list = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

/** item: {q} for a typed search or {q, name, sex, birth_date, dossier_id} for an opened patient. */
export function rememberSearch(item) {
  const key = (item.dossier_id || "") + "|" + (item.name || item.q || "").toLowerCase();
  const list = recentSearches().filter((x) => (x.dossier_id || "") + "|" + (x.name || x.q || "").toLowerCase() !== key);
  list.unshift({ ...item, at: new Date().toISOString() });
  localStorage.setItem(KEY, JSON.stringify(list.slice(0, MAX)));
}

export function clearRecentSearches() {
  localStorage.removeItem(KEY);
}
