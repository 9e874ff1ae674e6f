// "Mes dernières recherches" (seed 002, 2.3): the last patients searched, kept in this
// browser's localStorage so that the list is there offline too. Names only, no clinical data
// (the summaries of the dossiers last opened are kept below, for the offline page).
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
  localStorage.removeItem(DOSSIERS_KEY);
}

// The dossiers last opened, so that a recent search opened offline still shows who the
// patient is and which dossiers they have (read-only, with a « hors ligne » notice): the
// identity and, per dossier, its number, request type, state and dates. No form, no
// document. Cleared at sign-out with the searches.
const DOSSIERS_KEY = "consilium.recent-dossiers.v1";
const MAX_DOSSIERS = 20;

function cachedDossiers() {
  try {
    const list = JSON.parse(localStorage.getItem(DOSSIERS_KEY) || "[]");
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

/** Keep the summary of a dossier the API just returned. */
export function rememberDossier(d) {
  const p = d.patient || {};
  const summary = {
    id: d.id,
    number: d.number || null,
    state: d.state,
    state_label: d.state_label,
    urgent: !!d.urgent,
    request_type: d.request_type ? d.request_type.label : null,
    requester: d.requester ? d.requester.name : null,
    expert: d.expert ? d.expert.name : null,
    created_at: d.created_at,
    modified_at: d.modified_at,
    patient: {
      id: p.id,
      birth_name: p.birth_name,
      used_name: p.used_name,
      first_name: p.first_name,
      used_first_name: p.used_first_name,
      sex: p.sex,
      birth_date: p.birth_date,
      ipp: p.ipp,
      ins: p.ins,
    },
    saved_at: new Date().toISOString(),
  };
  const list = cachedDossiers().filter((x) => x.id !== d.id);
  list.unshift(summary);
  try {
    localStorage.setItem(DOSSIERS_KEY, JSON.stringify(list.slice(0, MAX_DOSSIERS)));
  } catch {
    /* storage full or refused: the page works without it */
  }
}

/** What this browser kept of a dossier: {dossier, others} (the patient's other dossiers
 * kept here), or null. */
export function cachedDossier(id) {
  const list = cachedDossiers();
  const dossier = list.find((x) => x.id === id);
  if (!dossier) return null;
  const pid = dossier.patient && dossier.patient.id;
  const others = pid ? list.filter((x) => x.id !== id && x.patient && x.patient.id === pid) : [];
  return { dossier, others };
}
