import { t } from "../i18n.js";
import { html } from "../lib.js";

export function RoomPage() {
  return html`<h1>${t("common.soon")}</h1>`;
}
