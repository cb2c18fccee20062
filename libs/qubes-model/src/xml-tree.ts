import { QubesError } from '@qubes-bus/contracts';
import { XMLParser, XMLValidator } from 'fast-xml-parser';

/**
 * A plain XML tree, the form the model reads and writes: elements keep every attribute and
 * child in order, so what this code does not understand goes back out as it came in.
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
}
/**
 * `raw`: the content of an element kept exactly as it was in the file, unparsed (device
 * assignments and volume config, which other services own): it was validated with the whole
 * document, and is written back as it came.
 */
export type XmlNode = XmlElement | { text: string } | { comment: string } | { raw: string } | Prerendered;

/** An element already written out by renderAt, at the depth it is placed (a cached VM). */
export interface Prerendered {
  prerendered: string;
}

export function isElement(node: XmlNode): node is XmlElement {
  return 'name' in node;
}

export function element(name: string, attrs: Record<string, string> = {}, children: XmlNode[] = []): XmlElement {
  return { name, attrs, children };
}

/** The child elements of `parent`, optionally only those named `name`. */
export function childElements(parent: XmlElement, name?: string): XmlElement[] {
  return parent.children.filter((c): c is XmlElement => isElement(c) && (name === undefined || c.name === name));
}

/** The text content of an element (its text children joined). */
export function textOf(el: XmlElement): string {
  return el.children.map((c) => ('text' in c ? c.text : '')).join('');
}

/**
 * Elements whose content stays unparsed: fast-xml-parser is the slowest part of loading a big
 * qubes.xml, and these subtrees are a third of it.
 */
export const RAW_ELEMENTS: readonly string[] = ['qubes.domains.domain.volume-config', 'qubes.domains.domain.devices'];

const parser = new XMLParser({
  stopNodes: [...RAW_ELEMENTS],
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  commentPropName: '#comment',
  // Values stay strings exactly as written: qids, colours and kernel command lines alike.
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  // decodes character references (&#10;) too, which the value holds as characters
  htmlEntities: true,
});

type RawNode = Record<string, unknown> & { ':@'?: Record<string, string> };

const RAW_PATHS = new Set(RAW_ELEMENTS);

function fromRaw(raw: RawNode[], at = ''): XmlNode[] {
  const out: XmlNode[] = [];
  for (const node of raw) {
    const key = Object.keys(node).find((k) => k !== ':@');
    if (key === undefined) continue;
    if (key === '#text') {
      out.push({ text: String(node[key]) });
    } else if (key === '#comment') {
      const inner = node[key] as RawNode[];
      out.push({ comment: inner.map((n) => String(n['#text'] ?? '')).join('') });
    } else if (key.startsWith('?')) {
      continue; // the XML declaration; written anew
    } else {
      const here = at === '' ? key : `${at}.${key}`;
      const inner = node[key] as RawNode[];
      const children: XmlNode[] = RAW_PATHS.has(here)
        ? inner.map((n) => ({ raw: String(n['#text'] ?? '') })).filter((n) => n.raw !== '')
        : fromRaw(inner, here);
      out.push({ name: key, attrs: { ...(node[':@'] ?? {}) }, children });
    }
  }
  return out;
}

export interface ParseOptions {
  /** Shown in error messages. */
  path: string;
  /** The root elements accepted. */
  root: readonly string[];
  /**
   * The caller has run validateXml on this very text already (the registry does it in a
   * worker thread, beside the parse): do not do it twice.
   */
  validated?: boolean;
}

/**
 * Checks that untrusted text is well-formed XML without a DOCTYPE; STORE_MALFORMED with the
 * parser's line and column otherwise. fast-xml-parser's parse() accepts broken XML silently,
 * so nothing is parsed without this having passed.
 */
export function validateXml(untrustedText: string, path: string): void {
  // Qubes never writes a DTD; one here could only define entities (expansion bombs, XXE).
  if (/<!DOCTYPE/i.test(untrustedText)) throw malformed(path, 'a DOCTYPE is not allowed');
  const verdict = XMLValidator.validate(untrustedText);
  if (verdict !== true) throw malformed(path, verdict.err.msg, { line: verdict.err.line, col: verdict.err.col });
}

/** Parses untrusted XML text, validated first unless the caller says it did that. */
export function parseXml(untrustedText: string, { path, root, validated = false }: ParseOptions): XmlElement {
  if (!validated) validateXml(untrustedText, path);
  const top = fromRaw(parser.parse(untrustedText) as RawNode[]).filter(isElement);
  const rootElement = top[0];
  if (top.length !== 1 || rootElement === undefined || !root.includes(rootElement.name)) {
    throw malformed(path, `the root element is not <${root.join('> or <')}>`);
  }
  return rootElement;
}

export function malformed(path: string, reason: string, position?: { line: number; col: number }): QubesError {
  const where = position === undefined ? '' : ` at line ${position.line}, column ${position.col}`;
  return new QubesError('STORE_MALFORMED', `${path} is malformed${where}: ${reason}; it was left untouched`, {
    details: { path, ...(position ?? {}) },
  });
}

const TEXT_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };
const ATTR_ESCAPES: Record<string, string> = { ...TEXT_ESCAPES, '"': '&quot;', '\n': '&#10;', '\r': '&#13;', '\t': '&#9;' };

function escapeText(text: string): string {
  return text.replace(/[&<>]/g, (c) => TEXT_ESCAPES[c]!);
}

function escapeAttr(text: string): string {
  return text.replace(/[&<>"\n\r\t]/g, (c) => ATTR_ESCAPES[c]!);
}

/**
 * Writes the tree as lxml's `pretty_print` does, which is how Qubes writes qubes.xml: elements
 * holding only elements are indented, one per line; an element holding text keeps its content
 * exactly (fast-xml-parser's builder would indent mixed content, changing the text).
 */
export function renderXml(root: XmlElement): string {
  const lines: string[] = ["<?xml version='1.0' encoding='UTF-8'?>"];
  renderElement(root, 0, lines);
  return lines.join('\n') + '\n';
}

function openTag(el: XmlElement): string {
  const attrs = Object.entries(el.attrs).map(([k, v]) => ` ${k}="${escapeAttr(v)}"`);
  return `<${el.name}${attrs.join('')}`;
}

/** One element as renderXml writes it at `depth`, without the declaration: for caching. */
export function renderAt(el: XmlElement, depth: number): Prerendered {
  const lines: string[] = [];
  renderElement(el, depth, lines);
  return { prerendered: lines.join('\n') };
}

function renderInline(node: XmlNode): string {
  if ('prerendered' in node) return node.prerendered.trim();
  if ('raw' in node) return node.raw;
  if ('text' in node) return escapeText(node.text);
  if ('comment' in node) return `<!--${node.comment}-->`;
  if (node.children.length === 0) return `${openTag(node)}/>`;
  return `${openTag(node)}>${node.children.map(renderInline).join('')}</${node.name}>`;
}

function renderElement(el: XmlElement, depth: number, lines: string[]): void {
  const indent = '  '.repeat(depth);
  // Raw content counts as text: written back exactly, indentation and all.
  const hasElements = el.children.some((c) => isElement(c) || 'prerendered' in c);
  // Without child elements, any text is the value, whitespace included; beside elements,
  // whitespace-only text is the old indentation, and other text makes it mixed content.
  const meaningful = hasElements ? el.children.filter((c) => !('text' in c) || c.text.trim() !== '') : el.children;
  const mixed = hasElements && meaningful.some((c) => 'text' in c || 'raw' in c);
  if (!hasElements || mixed) {
    lines.push(`${indent}${renderInline({ ...el, children: meaningful })}`);
  } else {
    lines.push(`${indent}${openTag(el)}>`);
    for (const child of meaningful) {
      if (isElement(child)) renderElement(child, depth + 1, lines);
      else if ('prerendered' in child) lines.push(child.prerendered);
      else lines.push(`${indent}  ${renderInline(child)}`);
    }
    lines.push(`${indent}</${el.name}>`);
  }
}
