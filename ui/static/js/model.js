// Reading the API's objects in one place, so that a field renamed server-side is fixed here.
import { t } from "./i18n.js";

export const STATES = ["draft", "awaiting_expertise", "expertised", "closure_requested", "closed"];

export function patientName(p) {
  if (!p) return "";
  if (p.display_name) return p.display_name;
  const last = (p.used_name || p.birth_name || p.last_name || "").toUpperCase();
  const first = p.used_first_name || p.first_name || (p.first_names || "").split(" ")[0] || "";
  return [last, first].filter(Boolean).join(" ");
}

export function sexSymbol(sex) {
  const s = (sex || "").toString().toUpperCase();
  if (s.startsWith("F")) return { symbol: "♀", label: t("sex.F") };
  if (s.startsWith("M") || s.startsWith("H")) return { symbol: "♂", label: t("sex.M") };
  return { symbol: "–", label: t("sex.U") };
}

export function personName(x) {
  if (!x) return "";
  if (typeof x === "string") return x;
  return x.name || x.display_name || x.label || [x.title, x.first_name, x.last_name].filter(Boolean).join(" ");
}

/** A dossier or an activity row (which flattens the patient into patient_*). */
export function dossierPatient(d) {
  if (d.patient) return d.patient;
  return { display_name: d.patient_name, sex: d.patient_sex, birth_date: d.patient_birth_date };
}

export function dossierRequester(d) {
  return personName(d.requester || d.requester_name || d.created_by);
}

export function dossierUpdated(d) {
  return d.updated_at || d.modified_at || d.created_at;
}

export function stateLabel(state) {
  return t(`state.${state}`);
}

export function roomOccupancy(r) {
  const occ = r.occupancy || {};
  const names = occ.names || (occ.participants || r.participants || []).map((p) => personName(p));
  const count = occ.count ?? r.participant_count ?? names.length;
  return { count, names };
}

/**
 * A dossier number as people type or say it ("te 2026 123", "TE2026000123") in the form the
 * server gives ("TE-2026-000123"); null when it cannot be one. Same rule as
 * dossier/numbering.py.
 */
export function normalizeDossierNumber(text) {
  const m = /^TE[\s\-./_]*(\d{4})[\s\-./_]*(\d{1,9})$/.exec(String(text || "").trim().toUpperCase());
  if (!m || Number(m[2]) === 0) return null;
  return `TE-${m[1]}-${String(Number(m[2])).padStart(6, "0")}`;
}
