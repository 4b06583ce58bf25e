// The "Start a task" form with JavaScript: choosing a kind shows only its fieldset, at once.
// Without JavaScript the "Show its fields" button reloads the page with ?kind=... instead
// (app/tasks/forms.py, TaskForm). A hidden fieldset is also disabled, so its inputs are not sent.
document.addEventListener("DOMContentLoaded", () => {
  const choice = document.getElementById("kind-choice");
  const form = document.getElementById("new-task");
  if (!choice || !form) return;
  document.getElementById("show-kind").hidden = true;
  function show(kind) {
    form.elements.kind.value = kind;
    for (const fieldset of form.querySelectorAll("fieldset[data-kind]")) {
      const chosen = fieldset.dataset.kind === kind;
      fieldset.hidden = !chosen;
      fieldset.disabled = !chosen;
    }
  }
  choice.addEventListener("change", () => show(choice.value));
  show(choice.value); // a browser may restore another choice on "back"
});
