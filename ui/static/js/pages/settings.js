import { t } from "../i18n.js";
import { html } from "../lib.js";

export function SettingsPage() {
  return html`<h1>${t("common.soon")}</h1>`;
}
