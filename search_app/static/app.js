// Progressive enhancement only: every page works without this file (the CSP allows no inline script).
// 1. Suggestions as you type in the search box (ARIA 1.2 combobox with a listbox popup).
// 2. The filter panel starts open on wide screens, where it is a sidebar rather than a fold-out.
(function () {
  "use strict";

  var DEBOUNCE_MS = 150;
  var MAX_SUGGESTIONS = 8;

  function enhanceSearchBox(input) {
    var form = input.form;
    var endpoint = input.getAttribute("data-suggest-url");
    var listId = input.id + "-suggestions";
    var list = document.createElement("ul");
    var status = document.createElement("p");
    var items = [];
    var active = -1;
    var timer = null;
    var pending = null;

    list.id = listId;
    list.className = "suggestions";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "検索候補");
    list.hidden = true;
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    input.parentNode.appendChild(list);
    input.parentNode.appendChild(status);

    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", listId);
    input.setAttribute("aria-expanded", "false");

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function open() {
      if (!items.length) return;
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    function highlight(index) {
      var options = list.children;
      for (var i = 0; i < options.length; i++) {
        options[i].setAttribute("aria-selected", i === index ? "true" : "false");
      }
      active = index;
      if (index >= 0) {
        input.setAttribute("aria-activedescendant", options[index].id);
        options[index].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    // Drops a request in flight or waiting out the debounce: once the reader has closed the list, chosen or left
    // the box, a late answer must not open it again.
    function cancel() {
      clearTimeout(timer);
      if (pending) pending.abort();
      pending = null;
    }

    function choose(index) {
      input.value = items[index];
      cancel();
      close();
      if (form.requestSubmit) form.requestSubmit();
      else form.submit();
    }

    function render(suggestions) {
      // An answer for the same words may come while the reader is moving through the list: keep their place.
      var kept = !list.hidden && active >= 0 ? items[active] : null;
      list.textContent = "";
      items = suggestions;
      items.forEach(function (text, index) {
        var option = document.createElement("li");
        option.id = listId + "-" + index;
        option.className = "suggestions__option";
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", "false");
        option.textContent = text; // text, never markup: suggestions come from indexed records
        // mousedown, not click: the input must keep focus, or its blur would close the list first.
        option.addEventListener("mousedown", function (event) {
          event.preventDefault();
          choose(index);
        });
        list.appendChild(option);
      });
      active = -1;
      if (items.length) {
        open();
        if (items.indexOf(kept) >= 0) highlight(items.indexOf(kept));
        status.textContent = "検索候補が" + items.length + "件あります。上下の矢印キーで選べます。";
      } else {
        close();
        status.textContent = "";
      }
    }

    function fetchSuggestions() {
      var text = input.value.trim();
      if (pending) pending.abort();
      if (!text) {
        render([]);
        return;
      }
      var request = new AbortController();
      pending = request;
      fetch(endpoint + "?q=" + encodeURIComponent(text), {
        signal: request.signal,
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          return response.ok ? response.json() : { suggestions: [] };
        })
        .then(function (data) {
          // Cancelled, or typed on meanwhile (a newer request is coming): this answer is no longer wanted.
          if (request.signal.aborted || input.value.trim() !== text) return;
          var seen = {};
          var suggestions = (data.suggestions || [])
            .filter(function (s) {
              if (typeof s !== "string" || !s || seen[s]) return false;
              seen[s] = true;
              return true;
            })
            .slice(0, MAX_SUGGESTIONS);
          render(suggestions);
        })
        .catch(function (error) {
          if (error.name !== "AbortError") render([]); // suggestions are a convenience: search still works
        });
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(fetchSuggestions, DEBOUNCE_MS);
    });

    input.addEventListener("keydown", function (event) {
      if (event.isComposing) return; // keys that drive the IME (変換, 確定) are not ours
      if (event.key === "ArrowDown") {
        if (!items.length) return;
        event.preventDefault();
        open();
        highlight(active + 1 < items.length ? active + 1 : 0);
      } else if (event.key === "ArrowUp") {
        if (!items.length) return;
        event.preventDefault();
        open();
        highlight(active > 0 ? active - 1 : items.length - 1);
      } else if (event.key === "Enter") {
        if (!list.hidden && active >= 0) {
          event.preventDefault();
          choose(active);
        }
      } else if (event.key === "Escape") {
        cancel();
        if (!list.hidden) {
          event.preventDefault();
          close();
        }
      }
    });

    input.addEventListener("blur", function () {
      cancel();
      close();
    });
  }

  function openFiltersOnWideScreens() {
    if (!window.matchMedia("(min-width: 56em)").matches) return;
    var panels = document.querySelectorAll("details[data-open-wide]");
    for (var i = 0; i < panels.length; i++) panels[i].open = true;
  }

  function init() {
    var inputs = document.querySelectorAll("input[data-suggest-url]");
    for (var i = 0; i < inputs.length; i++) enhanceSearchBox(inputs[i]);
    openFiltersOnWideScreens();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
