// Turnout dashboard: pause and resume a schedule (PATCH /schedules/{id}, as any client would).
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest && event.target.closest("button.schedule-toggle");
  if (!button) return;
  const paused = button.dataset.paused === "true";
  button.disabled = true;
  const answer = await window.Turnout.call("PATCH", button.dataset.url, { paused });
  if (!answer.ok) {
    window.Turnout.toast(button.textContent + ": " + window.Turnout.errorText(answer.data, answer.status));
    button.disabled = false;
    return;
  }
  window.location.reload();
});
