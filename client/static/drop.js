// Drag and drop: a file dropped anywhere on the page is handed to `onFile`; an overlay says
// where it goes while it is dragged over (not while a session runs: `busy()`).

export function acceptDrops(overlay, busy, onFile) {
  const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = busy() ? "none" : "copy";
    overlay.hidden = busy();
  });
  document.addEventListener("dragleave", (event) => {
    if (event.relatedTarget === null) overlay.hidden = true;
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    overlay.hidden = true;
    if (!busy() && event.dataTransfer.files.length) onFile(event.dataTransfer.files[0]);
  });
}
