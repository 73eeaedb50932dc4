/** A bench's figures on one line, `name=value` separated by spaces: its report's last line, for scripts. */
export function figuresLine(figures: Readonly<Record<string, unknown>>): string {
  return Object.entries(figures)
    .map(([name, value]) => `${name}=${value}`)
    .join(" ");
}
