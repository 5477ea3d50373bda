// Progressive enhancement only: a "Copy link" button where the Clipboard API exists.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      var status = document.getElementById("copy-status");
      navigator.clipboard.writeText(input.value).then(function () {
        if (status) { status.textContent = "Copied."; }
      }, function () {
        input.select();
        if (status) { status.textContent = "Select the link and copy it."; }
      });
    });
  });
});
