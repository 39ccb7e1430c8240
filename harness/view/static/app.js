// sfteval view: keyboard shortcuts for the review forms (no other script; pages work without it).
(function () {
  "use strict";
  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type !== "radio" && el.type !== "checkbox"));
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.metaKey) return;
    var form = document.getElementById("review-form");
    var next = document.getElementById("next");
    var active = document.activeElement;
    if (!form) {
      if (next && !typing(active) && (ev.key === "n" || ev.key === "Enter") && !ev.ctrlKey) {
        ev.preventDefault();
        window.location.href = next.getAttribute("href");
      }
      return;
    }
    if (ev.key === "Enter") {
      if (active && active.tagName === "TEXTAREA" && !ev.ctrlKey) return;
      ev.preventDefault();
      if (typeof form.requestSubmit === "function") form.requestSubmit(); else form.submit();
      return;
    }
    var key = ev.key.toLowerCase();
    var inNumber = active && active.tagName === "INPUT" && active.type === "number";
    if (ev.ctrlKey || (typing(active) && !(inNumber && (key === "y" || key === "n")))) return;
    if (form.dataset.review === "pair") {
      var radios = form.querySelectorAll("input[name=verdict]");
      for (var i = 0; i < radios.length; i++) {
        if ((radios[i].dataset.keys || "").split(" ").indexOf(key) >= 0) {
          radios[i].checked = true;
          radios[i].focus();
          ev.preventDefault();
        }
      }
    } else if (key === "y" || key === "n") {
      var box = document.getElementById(key === "y" ? "usable-yes" : "usable-no");
      if (box) { box.checked = true; box.focus(); ev.preventDefault(); }
    }
  });
})();
