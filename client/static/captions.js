// The captions on the page: finals as paragraphs with their start time, and the current
// partial with its committed text in normal weight and its provisional tail lighter. The same
// elements serve both modes; caption mode only restyles them (style.css: the last two lines).

import { clock, duration } from "./format.js";

export class CaptionsView {
  constructor({ finals, committed, provisional, scroller }) {
    this.finalsElement = finals;
    this.committed = committed;
    this.provisional = provisional;
    this.scroller = scroller;
  }

  showPartial(committed, text) {
    const follows = this.atBottom();
    const ok = text.startsWith(committed);
    this.committed.textContent = ok ? committed : "";
    this.provisional.textContent = ok ? text.slice(committed.length) : text;
    if (follows) this.toBottom();
  }

  addFinal(final) {
    const follows = this.atBottom();
    const paragraph = document.createElement("p");
    paragraph.className = "final";
    const time = document.createElement("time");
    time.dateTime = duration(final.start);
    time.textContent = clock(final.start);
    time.title = `${final.start.toFixed(2)}–${final.end.toFixed(2)} s`;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = final.text;
    paragraph.append(time, " ", text);
    this.finalsElement.appendChild(paragraph);
    this.showPartial("", "");
    if (follows) this.toBottom();
  }

  clear() {
    this.finalsElement.replaceChildren();
    this.showPartial("", "");
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}
