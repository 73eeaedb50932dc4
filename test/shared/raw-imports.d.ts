// Vite's ?raw imports: the file's text as a string, in Node and in workerd alike (the corpus
// files are read this way so the redaction score runs in both test projects).
declare module "*?raw" {
  const text: string;
  export default text;
}
