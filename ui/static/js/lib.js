// The UI library in one place: Preact with hooks, and htm for templates without a build step.
import { Fragment, createContext, h, render } from "../vendor/preact.mjs";
import {
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useReducer,
  useRef,
  useState,
} from "../vendor/hooks.mjs";
import htm from "../vendor/htm.mjs";

export const html = htm.bind(h);
export {
  Fragment,
  createContext,
  h,
  render,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useReducer,
  useRef,
  useState,
};
