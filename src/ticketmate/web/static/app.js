// Ticket MATE admin pages: small enhancements over pages that work without JavaScript.
// Runs on the first page load and on every piece HTMX swaps in (htmx.onLoad).
(function () {
  "use strict";

  // -- times: the server writes UTC; show the browser's time zone, keep UTC on hover ------------
  var thisYear = new Date().getFullYear();
  var timeFormat = function (withYear) {
    return new Intl.DateTimeFormat(undefined, {
      year: withYear ? "numeric" : undefined, month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
    });
  };
  var sameYear = timeFormat(false);
  var otherYear = timeFormat(true);

  function localTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      el.textContent = (moment.getFullYear() === thisYear ? sameYear : otherYear).format(moment);
      el.setAttribute("data-local", "");
    });
  }

  // -- destructive forms: ask first; the server asks on a page of its own when this did not run --
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      return;
    }
    var field = form.querySelector("input[name=confirmed]");
    if (field) field.value = "1";
  }, true);

  // -- Copy buttons (shown only when copying can work) ---------------------------------------
  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (button.hasAttribute("data-ready")) return;
      button.setAttribute("data-ready", "");
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy"));
        if (!target) return;
        var text = target.textContent.trim();
        var done = function () {
          var label = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done);
        } else {
          // Plain-HTTP hosts have no clipboard API: select the text and use the old command.
          var range = document.createRange();
          range.selectNodeContents(target);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          if (document.execCommand("copy")) done();
        }
      });
    });
  }

  // -- multi-value inputs: values as chips; the form still posts "A, B" in the original field --
  function split(text) {
    return text.split(",").map(function (v) { return v.trim(); }).filter(Boolean);
  }

  function multiValue(root) {
    root.querySelectorAll("input[data-multi]:not([data-ready])").forEach(function (field) {
      field.setAttribute("data-ready", "");
      var values = split(field.value);
      var box = document.createElement("div");
      box.className = "multi";
      var chips = document.createElement("span");
      var entry = document.createElement("input");
      entry.type = "text";
      entry.autocomplete = "off";
      entry.placeholder = field.placeholder;
      if (field.getAttribute("list")) entry.setAttribute("list", field.getAttribute("list"));
      ["aria-invalid", "aria-describedby"].forEach(function (name) {
        if (field.hasAttribute(name)) entry.setAttribute(name, field.getAttribute(name));
      });
      // The label points at what people type into.
      entry.id = field.id;
      field.id = field.id + "-values";
      field.type = "hidden";
      field.removeAttribute("list");
      field.parentNode.insertBefore(box, field);
      box.appendChild(chips);
      box.appendChild(entry);

      function draw() {
        field.value = values.join(", ");
        chips.textContent = "";
        values.forEach(function (value, index) {
          var chip = document.createElement("span");
          chip.className = "chip";
          chip.textContent = value;
          var remove = document.createElement("button");
          remove.type = "button";
          remove.textContent = "×";
          remove.setAttribute("aria-label", "Remove " + value);
          remove.addEventListener("click", function () { values.splice(index, 1); draw(); });
          chip.appendChild(remove);
          chips.appendChild(chip);
        });
      }
      function take() {
        split(entry.value).forEach(function (value) {
          var known = values.some(function (v) { return v.toLowerCase() === value.toLowerCase(); });
          if (!known) values.push(value);
        });
        entry.value = "";
        draw();
      }
      entry.addEventListener("keydown", function (event) {
        if ((event.key === "Enter" || event.key === ",") && entry.value.trim()) {
          event.preventDefault();
          take();
        } else if (event.key === "Backspace" && !entry.value && values.length) {
          values.pop();
          draw();
        }
      });
      entry.addEventListener("change", function () { if (entry.value.includes(",")) take(); });
      // Whatever is still typed counts when the form is sent.
      field.form.addEventListener("submit", take);
      draw();
    });
  }

  // -- the Adaptive Card of a delivery, drawn by Microsoft's renderer as Teams would ------------
  var TEAMS_HOST_CONFIG = {
    fontFamily: "'Segoe UI', system-ui, -apple-system, sans-serif",
    spacing: { small: 4, default: 8, medium: 16, large: 20, extraLarge: 24, padding: 16 },
    separator: { lineThickness: 1, lineColor: "#E0E0E0" },
    fontSizes: { small: 12, default: 14, medium: 16, large: 20, extraLarge: 24 },
    fontWeights: { lighter: 300, default: 400, bolder: 600 },
    containerStyles: {
      default: {
        backgroundColor: "#FFFFFF",
        foregroundColors: {
          default: { default: "#242424", subtle: "#616161" },
          accent: { default: "#5B5FC7", subtle: "#7579EB" },
          good: { default: "#0E7A0B", subtle: "#107C10" },
          warning: { default: "#835C00", subtle: "#8A6200" },
          attention: { default: "#C4314B", subtle: "#D13438" },
        },
      },
      emphasis: {
        backgroundColor: "#F5F5F5",
        foregroundColors: { default: { default: "#242424", subtle: "#616161" } },
      },
    },
    actions: { maxActions: 6, buttonSpacing: 8, actionsOrientation: "horizontal", actionAlignment: "left" },
    factSet: {
      title: { weight: "bolder", wrap: true, maxWidth: 150 },
      value: { wrap: true },
      spacing: 8,
    },
  };

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // The Markdown subset Teams renders in TextBlocks. The text is escaped first, so nothing
  // from a Jira issue can become markup; links are kept only for http(s) addresses.
  function markdown(text) {
    var html = escapeHtml(text);
    html = html.replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g,
      '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>');
    html = html.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
    html = html.replace(/(^|[\s(])_([^_]+)_(?=[\s).,!?]|$)/g, "$1<em>$2</em>");
    html = html.replace(/\n\n+/g, "<br><br>").replace(/\n/g, " ");
    return html;
  }

  function adaptiveCards(root) {
    var AC = window.AdaptiveCards;
    root.querySelectorAll("[data-adaptive-card]:not([data-ready])").forEach(function (box) {
      if (!AC) return;
      box.setAttribute("data-ready", "");
      var source = document.getElementById(box.getAttribute("data-adaptive-card"));
      try {
        var payload = JSON.parse(source.textContent);
        AC.AdaptiveCard.onProcessMarkdown = function (text, result) {
          result.outputHtml = markdown(text);
          result.didProcess = true;
        };
        var card = new AC.AdaptiveCard();
        card.hostConfig = new AC.HostConfig(TEAMS_HOST_CONFIG);
        card.onExecuteAction = function (action) {
          var url = action.url || "";
          if (/^https?:\/\//i.test(url)) window.open(url, "_blank", "noopener");
        };
        card.parse(payload);
        var rendered = card.render();
        box.textContent = "";
        if (rendered) box.appendChild(rendered);
        box.setAttribute("data-rendered", "true");
      } catch (error) {
        box.textContent = "The card could not be drawn: " + error;
        box.setAttribute("data-rendered", "false");
      }
    });
  }

  function enhance(root) {
    localTimes(root);
    copyButtons(root);
    multiValue(root);
    adaptiveCards(root);
  }

  if (window.htmx) {
    window.htmx.onLoad(enhance);
  } else {
    document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  }
})();
